"""What a detector is, without loading torch: anything with ``score(pairs) -> list[float]``.

A detector that finds more than a score (the categories of harm a guard LM names, which detector of a cascade
decided) also has ``judge(pairs) -> list[Judgement]``; :func:`judge_with` asks any detector for judgements.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from protector_models.pairs import Pair

Categories = Mapping[str, float | bool]
"""Categories of harm a detector named for one pair: a category's probability (ShieldGemma's policies) or a flag
(the Llama Guard categories it listed). Empty for a classifier."""


@runtime_checkable
class Detector(Protocol):
    """Scores pairs: the probability that each answer is harmful, in input order."""

    def score(self, pairs: Sequence[Pair]) -> list[float]:
        """One score per pair, in [0, 1], higher is more harmful."""
        ...


@dataclass(frozen=True, slots=True)
class Judgement:
    """One pair's score, with the categories the detector named and, in a cascade, which detector decided."""

    score: float
    categories: Categories = field(default_factory=dict, hash=False)
    decided_by: str | None = None
    """``first`` or ``second`` for a cascade's verdicts (``first.second`` through nested cascades); else None."""


@runtime_checkable
class Judge(Protocol):
    """A detector that also gives categories or who decided: ``judge(pairs)`` in input order."""

    def judge(self, pairs: Sequence[Pair]) -> list[Judgement]:
        """One judgement per pair; ``score`` as :meth:`Detector.score` gives it."""
        ...


def judge_with(detector: Detector, pairs: Sequence[Pair]) -> list[Judgement]:
    """``detector``'s judgements: its own where it gives them, else its scores with no categories."""
    if isinstance(detector, Judge):
        return detector.judge(pairs)
    return [Judgement(score) for score in detector.score(pairs)]
