"""Two detectors in turn: the first scores every pair and decides those it is sure of; the pairs it scores inside
the band go to the second (a guard LM on a GPU, say), whose judgement is theirs. Each judgement says which decided."""

from __future__ import annotations

from collections.abc import Sequence

from protector_models.errors import ModelRuntimeError
from protector_models.interfaces import Detector, Judgement, judge_with
from protector_models.pairs import Pair


class CascadeDetector:
    """``first`` decides outside ``band`` = (low, high); pairs it scores within it (bounds included) go to
    ``second`` in one call. ``decided_by`` is ``first`` or ``second`` (``first.second``, ... through nested
    cascades)."""

    def __init__(self, first: Detector, second: Detector, *, band: Sequence[float]) -> None:
        low, high = band
        if not 0.0 <= low <= high <= 1.0:
            raise ValueError(f"band must be [low, high] with 0 <= low <= high <= 1, got {list(band)}")
        self.first = first
        self.second = second
        self.band = (float(low), float(high))

    def score(self, pairs: Sequence[Pair]) -> list[float]:
        """The deciding detector's score per pair, in input order."""
        return [judgement.score for judgement in self.judge(pairs)]

    def judge(self, pairs: Sequence[Pair]) -> list[Judgement]:
        """Judgements in input order, each naming the detector that decided."""
        low, high = self.band
        judged = [_decided(j, "first") for j in judge_with(self.first, pairs)]
        unsure = [index for index, judgement in enumerate(judged) if low <= judgement.score <= high]
        if unsure:
            second = judge_with(self.second, [pairs[index] for index in unsure])
            if len(second) != len(unsure):
                raise ModelRuntimeError(
                    f"the second detector returned {len(second)} judgements for {len(unsure)} pairs"
                )
            for index, judgement in zip(unsure, second, strict=True):
                judged[index] = _decided(judgement, "second")
        return judged

    def close(self) -> None:
        """Close both detectors (a remote one's connections)."""
        for detector in (self.first, self.second):
            close = getattr(detector, "close", None)
            if callable(close):
                close()


def _decided(judgement: Judgement, by: str) -> Judgement:
    decided_by = by if judgement.decided_by is None else f"{by}.{judgement.decided_by}"
    return Judgement(judgement.score, judgement.categories, decided_by)
