"""Detectors for batching and serving tests: real detectors wrapped to record, hold or fail calls."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from protector_models import Detector, Pair
from protector_models.testing import BENIGN_WORDS, HARMFUL_WORDS, QUESTIONS


class GatedDetector:
    """Delegates to a real detector and records each call's size. ``gate`` (open by default) holds calls while
    closed; a pair whose answer contains ``fail_on`` makes the whole call fail, as a model running out of
    memory does."""

    def __init__(self, inner: Detector, *, fail_on: str | None = None) -> None:
        self.inner = inner
        self.fail_on = fail_on
        self.sizes: list[int] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self._lock = threading.Lock()

    def score(self, pairs: Sequence[Pair]) -> list[float]:
        with self._lock:
            self.sizes.append(len(pairs))
        self.entered.set()
        if not self.gate.wait(timeout=30):
            raise TimeoutError("the test never opened the gate")
        if self.fail_on is not None and any(self.fail_on in pair.answer for pair in pairs):
            raise RuntimeError("CUDA out of memory")
        return self.inner.score(pairs)


def distinct_pairs(count: int) -> list[Pair]:
    """``count`` different pairs, harmful and benign alternating (the keyword detector tells them apart)."""
    pairs = []
    for index in range(count):
        words = HARMFUL_WORDS if index % 2 == 0 else BENIGN_WORDS
        filler = " ".join(["the", "a", "with", "then", "mix", "use"][: 1 + index % 6])
        pairs.append(Pair(QUESTIONS[index % len(QUESTIONS)], f"{filler} {words[index // 2 % len(words)]} {index}"))
    return pairs
