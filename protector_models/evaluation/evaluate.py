"""Measuring a detector on labelled pairs: overall metrics and per-source / per-category breakdowns."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from protector_models.data.labelled import LabelledPair
from protector_models.errors import ModelRuntimeError
from protector_models.evaluation.metrics import BinaryMetrics, binary_metrics
from protector_models.pairs import Pair
from protector_models.results import Verdict


class Checker(Protocol):
    """What an evaluation needs: a ``Protector``, or anything that checks pairs at a threshold."""

    threshold: float

    def check(self, pairs: Sequence[Pair], *, threshold: float | None = None) -> list[Verdict]: ...


@dataclass(frozen=True)
class Evaluation:
    """Metrics at one threshold, with the scores they came from."""

    overall: BinaryMetrics
    by_source: dict[str, BinaryMetrics] = field(default_factory=dict)
    by_category: dict[str, BinaryMetrics] = field(default_factory=dict)
    scores: list[float] = field(default_factory=list)
    labels: list[bool] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        """JSON-ready metrics (scores left out)."""
        return {
            "overall": self.overall.as_dict(),
            "by_source": {name: m.as_dict() for name, m in self.by_source.items()},
            "by_category": {name: m.as_dict() for name, m in self.by_category.items()},
        }


def evaluate(protector: Checker, examples: Sequence[LabelledPair], threshold: float | None = None) -> Evaluation:
    """Score every example with the protector's detector and compare with the labels."""
    threshold = protector.threshold if threshold is None else threshold
    verdicts = protector.check([e.pair for e in examples], threshold=threshold)
    unscored = [i for i, verdict in enumerate(verdicts) if verdict.harm_score is None]
    if unscored:  # metrics over made-up scores would be wrong, whatever on_error allows in production
        raise ModelRuntimeError(
            f"the detector could not score {len(unscored)} of {len(verdicts)} pairs ({verdicts[unscored[0]].error}); "
            "metrics need every score"
        )
    scores = [v.harm_score for v in verdicts if v.harm_score is not None]
    labels = [e.harmful for e in examples]
    return Evaluation(
        overall=binary_metrics(labels, scores, threshold),
        by_source=_grouped(examples, scores, threshold, lambda e: e.source or "-"),
        by_category=_grouped(examples, scores, threshold, lambda e: e.category),
        scores=scores,
        labels=labels,
    )


def _grouped(
    examples: Sequence[LabelledPair],
    scores: Sequence[float],
    threshold: float,
    key: Callable[[LabelledPair], str | None],
) -> dict[str, BinaryMetrics]:
    groups: dict[str, list[int]] = {}
    for index, example in enumerate(examples):
        name = key(example)
        if name is not None:
            groups.setdefault(name, []).append(index)
    return {
        name: binary_metrics([examples[i].harmful for i in members], [scores[i] for i in members], threshold)
        for name, members in sorted(groups.items())
    }
