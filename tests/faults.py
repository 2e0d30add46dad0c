"""Fault injection around real tiny models: the model runs, then its output is corrupted (or it is made to fail).

Nothing here invents a verdict: every fault starts from what the real detector or rewriter produced.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from protector_models import Detector, Pair, Rewriter

SCORE_FAULTS: dict[str, Callable[[list[float]], Any]] = {
    "nan": lambda scores: [float("nan"), *scores[1:]],
    "+inf": lambda scores: [*scores[:-1], float("inf")],
    "-inf": lambda scores: [float("-inf")] * len(scores),
    "above one": lambda scores: [score + 1.0 for score in scores],
    "negative": lambda scores: [score - 1.0 for score in scores],
    "one too few": lambda scores: scores[:-1],
    "one too many": lambda scores: [*scores, 0.0],
    "none": lambda scores: None,
    "text": lambda scores: "0.1",
    "not numbers": lambda scores: [str(score) for score in scores],
}
"""What a broken detector might return instead of its real scores."""

REWRITE_FAULTS: dict[str, Callable[[list[str]], Any]] = {
    "one too few": lambda texts: texts[:-1],
    "one too many": lambda texts: [*texts, "extra"],
    "empty": lambda texts: [""] * len(texts),
    "whitespace": lambda texts: [" \n\t"] * len(texts),
    "none items": lambda texts: [None] * len(texts),
    "one string": lambda texts: "".join(texts),
    "lone surrogate": lambda texts: [f"{text}\ud800" for text in texts],
}
"""What a broken rewriter might return instead of its real rewrites."""


class CorruptedDetector:
    """A real detector whose scores are corrupted by ``fault`` from the ``on_call``-th call on (1 = the first)."""

    def __init__(self, inner: Detector, fault: Callable[[list[float]], Any], *, on_call: int = 1) -> None:
        self.inner, self.fault, self.on_call = inner, fault, on_call
        self.calls = 0

    def score(self, pairs: Sequence[Pair]) -> Any:
        self.calls += 1
        scores = self.inner.score(pairs)
        return self.fault(scores) if self.calls >= self.on_call else scores


class FailingDetector:
    """A real detector that raises from the ``on_call``-th call on, as a model that ran out of memory."""

    def __init__(self, inner: Detector, *, on_call: int = 1) -> None:
        self.inner, self.on_call = inner, on_call
        self.calls = 0

    def score(self, pairs: Sequence[Pair]) -> list[float]:
        self.calls += 1
        if self.calls >= self.on_call:
            raise RuntimeError("CUDA out of memory")
        return self.inner.score(pairs)


class CorruptedRewriter:
    """A real rewriter whose output is corrupted by ``fault``."""

    def __init__(self, inner: Rewriter, fault: Callable[[list[str]], Any]) -> None:
        self.inner, self.fault = inner, fault

    def rewrite(self, pairs: Sequence[Pair]) -> Any:
        return self.fault(self.inner.rewrite(pairs))


class FailingRewriter:
    """A real rewriter that raises after generating, as one whose decoding step breaks."""

    def __init__(self, inner: Rewriter) -> None:
        self.inner = inner

    def rewrite(self, pairs: Sequence[Pair]) -> list[str]:
        self.inner.rewrite(pairs)
        raise RuntimeError("generation failed")


def break_forward(model: torch.nn.Module, logits: float | None) -> None:
    """Make ``model`` raise on forward (``logits=None``) or return ``logits`` everywhere, e.g. NaN from an overflow."""
    real_forward = model.forward

    def forward(*args: Any, **kwargs: Any) -> Any:
        output = real_forward(*args, **kwargs)
        if logits is None:
            raise RuntimeError("CUDA error: device-side assert triggered")
        output.logits = torch.full_like(output.logits, logits)
        return output

    model.forward = forward  # type: ignore[method-assign]
