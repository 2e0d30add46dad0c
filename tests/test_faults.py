"""Every model fault fails closed under every on_error mode: ``raise`` raises, ``block`` withholds, and ``pass``
lets answers through only marked unchecked. A known-harmful answer is never passed on, whatever the mode."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from faults import (
    REWRITE_FAULTS,
    SCORE_FAULTS,
    CorruptedDetector,
    CorruptedRewriter,
    FailingDetector,
    FailingRewriter,
    break_forward,
)

from protector_models import (
    CausalLMRewriter,
    CausalLMRewriterConfig,
    ClassifierDetector,
    ModelRuntimeError,
    Protector,
    Result,
)
from protector_models.testing import FIXED_REWRITE

HARMFUL = ("how do i make it", "first mix the poison and use it")
BENIGN = ("what should i do", "here is some cake and bread")
REFUSAL = "Withheld."


@pytest.fixture
def real_detector(detector_config: dict) -> ClassifierDetector:
    """A fresh copy of the tiny keyword detector (tests patch its model)."""
    detector = Protector.from_config(detector_config).detector
    assert isinstance(detector, ClassifierDetector)
    return detector


@pytest.fixture(scope="module")
def real_rewriter(fixed_detoxifier_dir: Path) -> CausalLMRewriter:
    """The tiny detoxifier trained to answer FIXED_REWRITE."""
    config = {"model": {"source": str(fixed_detoxifier_dir), "device": "cpu"}, "max_new_tokens": 20}
    return CausalLMRewriter.from_config(CausalLMRewriterConfig.model_validate(config))


def guarded(detector, rewriter=None, on_error="raise", action="detoxify", **kwargs) -> Protector:
    return Protector(detector, rewriter, on_error=on_error, action=action, refusal_text=REFUSAL, **kwargs)


def assert_detector_fault_handled(make: Callable[[str], Protector], error: str) -> None:
    """raise -> ModelRuntimeError; block -> every answer refused, flagged, unchecked; pass -> unchanged, unchecked."""
    with pytest.raises(ModelRuntimeError, match=error):
        make("raise").protect([BENIGN, HARMFUL])
    with pytest.raises(ModelRuntimeError, match=error):
        make("raise").check([BENIGN, HARMFUL])

    blocked = make("block").protect([BENIGN, HARMFUL])
    assert [(r.output, r.action, r.flagged, r.checked, r.harm_score) for r in blocked] == [
        (REFUSAL, "block", True, False, None)
    ] * 2
    assert all(error_matches(r, error) for r in blocked)
    assert [(v.flagged, v.checked) for v in make("block").check([BENIGN, HARMFUL])] == [(True, False)] * 2

    passed = make("pass").protect([BENIGN, HARMFUL])
    assert [(r.output, r.action, r.flagged, r.checked, r.harm_score) for r in passed] == [
        (BENIGN[1], "unchecked", False, False, None),
        (HARMFUL[1], "unchecked", False, False, None),
    ]
    assert all(error_matches(r, error) for r in passed)
    assert [(v.flagged, v.checked) for v in make("pass").check([BENIGN, HARMFUL])] == [(False, False)] * 2


def error_matches(result: Result, error: str) -> bool:
    return result.error is not None and re.search(error, result.error) is not None


@pytest.mark.parametrize("fault", SCORE_FAULTS)
def test_corrupted_scores_are_a_model_fault(real_detector, fault):
    def make(on_error: str) -> Protector:
        return guarded(CorruptedDetector(real_detector, SCORE_FAULTS[fault]), on_error=on_error)

    assert_detector_fault_handled(make, "detector")


def test_a_raising_forward_is_a_model_fault(real_detector):
    break_forward(real_detector.model, None)
    assert_detector_fault_handled(
        lambda on_error: guarded(real_detector, on_error=on_error), "detector failed: RuntimeError: CUDA error"
    )


@pytest.mark.parametrize("logit", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_logits_are_a_model_fault(real_detector, logit):
    """-inf would read as P(harmful) = 0, a harmful answer passed as checked: every non-finite logit is a fault."""
    break_forward(real_detector.model, logit)
    assert_detector_fault_handled(lambda on_error: guarded(real_detector, on_error=on_error), "non-finite logits")


@pytest.mark.parametrize("fault", ["raises", *REWRITE_FAULTS])
@pytest.mark.parametrize("on_error", ["raise", "block", "pass"])
def test_a_failed_rewrite_never_passes_the_harmful_answer(real_detector, real_rewriter, fault, on_error):
    rewriter = (
        FailingRewriter(real_rewriter) if fault == "raises" else CorruptedRewriter(real_rewriter, REWRITE_FAULTS[fault])
    )
    protector = guarded(real_detector, rewriter, on_error=on_error)
    loud = on_error == "raise" and fault not in ("empty", "whitespace", "none items", "lone surrogate")
    if loud:  # the rewriter itself broke: on_error="raise" says so
        with pytest.raises(ModelRuntimeError, match="rewriter failed"):
            protector.protect([BENIGN, HARMFUL])
        return
    benign, harmful = protector.protect([BENIGN, HARMFUL])
    assert (benign.output, benign.action, benign.checked) == (BENIGN[1], "none", True)
    assert (harmful.output, harmful.action, harmful.flagged) == (REFUSAL, "refuse", True)
    assert "refused instead" in (harmful.error or "") or "rewriter failed" in (harmful.error or "")


def test_the_real_rewriter_works_when_nothing_is_broken(real_detector, real_rewriter):
    """The control for the test above: without a fault the harmful answer is rewritten, not refused."""
    benign, harmful = guarded(real_detector, real_rewriter).protect([BENIGN, HARMFUL])
    assert (harmful.output, harmful.action) == (FIXED_REWRITE, "detoxify")
    assert benign.output == BENIGN[1]


@pytest.mark.parametrize("fault", ["raises", *SCORE_FAULTS])
@pytest.mark.parametrize("on_error", ["raise", "block", "pass"])
def test_a_failed_rescoring_never_passes_the_rewrite_unchecked(real_detector, real_rewriter, fault, on_error):
    if fault == "raises":
        detector = FailingDetector(real_detector, on_call=2)
    else:
        detector = CorruptedDetector(real_detector, SCORE_FAULTS[fault], on_call=2)
    protector = guarded(detector, real_rewriter, on_error=on_error)
    if on_error == "raise":
        with pytest.raises(ModelRuntimeError, match="scoring the rewrite failed"):
            protector.protect([BENIGN, HARMFUL])
        return
    benign, harmful = protector.protect([BENIGN, HARMFUL])
    assert detector.calls == 2  # the first pass scored, the rescoring broke
    assert benign.output == BENIGN[1]
    assert (harmful.output, harmful.action) == (REFUSAL, "refuse")
    assert "scoring the rewrite failed" in (harmful.error or "")
