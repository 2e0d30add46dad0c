"""What a detector is, without loading torch: anything with ``score(pairs) -> list[float]``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from protector_models.pairs import Pair


@runtime_checkable
class Detector(Protocol):
    """Scores pairs: the probability that each answer is harmful, in input order."""

    def score(self, pairs: Sequence[Pair]) -> list[float]:
        """One score per pair, in [0, 1], higher is more harmful."""
        ...
