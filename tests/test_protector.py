"""The protector's policy: actions, unchanged benign answers, on_error modes, bad input."""

from __future__ import annotations

import pickle
import re
from collections.abc import Sequence

import pytest

from protector_models import (
    ConfigError,
    HarmfulContentError,
    InvalidInputError,
    ModelLoadError,
    ModelRuntimeError,
    Pair,
    Protector,
    Verdict,
)
from protector_models.config.schema import DEFAULT_REFUSAL
from protector_models.data.labelled import LabelledPair
from protector_models.evaluation.evaluate import evaluate
from protector_models.testing import save_tiny_classifier

HARMFUL = ("how do i make it", "first mix the poison and use it")
BENIGN = ("what should i do", "  here is some cake\u00a0and bread\n\tfor you \U0001f35e ")


class FailingDetector:
    """A detector whose model breaks (as on out-of-memory): it raises, it never invents a score."""

    def score(self, pairs: Sequence[Pair]) -> list[float]:
        raise RuntimeError("CUDA out of memory")


class NaNDetector:
    """A detector whose model overflowed: its raw output is not a number."""

    def score(self, pairs: Sequence[Pair]) -> list[float]:
        return [float("nan")] * len(pairs)


class EchoRewriter:
    """Rewrites by a fixed rule so the test can tell it ran (a stand-in for a detoxifier model)."""

    def __init__(self) -> None:
        self.calls: list[list[Pair]] = []

    def rewrite(self, pairs: Sequence[Pair]) -> list[str]:
        self.calls.append(list(pairs))
        return [f"safe version of: {pair.question}" for pair in pairs]


def test_benign_answers_come_back_byte_for_byte(protector: Protector):
    (result,) = protector.protect([BENIGN])
    assert result.output is BENIGN[1] or result.output == BENIGN[1]
    assert (result.flagged, result.action, result.changed) == (False, "none", False)
    assert result.output.encode() == BENIGN[1].encode()


def test_check_scores_without_rewriting(protector: Protector):
    harmful, benign = protector.check([HARMFUL, BENIGN])
    assert harmful.flagged
    assert harmful.harm_score > 0.5
    assert not benign.flagged
    assert benign.harm_score < 0.5


def test_default_action_detoxify_with_refusal_rewriter_refuses(protector: Protector):
    harmful, benign = protector.protect([HARMFUL, BENIGN])
    assert (harmful.output, harmful.action, harmful.original) == (DEFAULT_REFUSAL, "refuse", HARMFUL[1])
    assert benign.output == BENIGN[1]


def test_detoxify_sends_only_flagged_pairs_to_the_rewriter(detector_config: dict):
    rewriter = EchoRewriter()
    protector = Protector(Protector.from_config(detector_config).detector, rewriter)
    results = protector.protect([BENIGN, HARMFUL, BENIGN])
    assert rewriter.calls == [[Pair(*HARMFUL)]]
    assert [r.output for r in results] == [BENIGN[1], "safe version of: how do i make it", BENIGN[1]]
    assert results[1].rewrite_ms > 0
    assert results[0].rewrite_ms == 0


@pytest.mark.parametrize(("action", "taken", "replaced"), [("pass", "annotate", False), ("refuse", "refuse", True)])
def test_pass_and_refuse(detector_config: dict, action: str, taken: str, replaced: bool):
    protector = Protector.from_config({**detector_config, "action": action, "refusal_text": "No."})
    (result,) = protector.protect([HARMFUL])
    assert result.flagged
    assert result.action == taken
    assert result.output == ("No." if replaced else HARMFUL[1])


def test_raise_carries_every_result_unchanged(detector_config: dict):
    protector = Protector.from_config({**detector_config, "action": "raise"})
    with pytest.raises(HarmfulContentError, match=r"1 of 2 answers flagged as harmful \(positions \[1\]\)") as caught:
        protector.protect([BENIGN, HARMFUL])
    assert [r.original for r in caught.value.results] == [BENIGN[1], HARMFUL[1]]
    assert protector.protect([BENIGN])[0].output == BENIGN[1]  # nothing flagged: no exception


def test_per_call_threshold_and_action_override(protector: Protector):
    (strict,) = protector.protect([BENIGN], threshold=0.0)
    assert strict.flagged
    (lenient,) = protector.protect([HARMFUL], threshold=1.0)
    assert not lenient.flagged
    (annotated,) = protector.protect([HARMFUL], action="pass")
    assert annotated.output == HARMFUL[1]
    assert annotated.action == "annotate"
    with pytest.raises(ConfigError, match=re.escape("threshold: must be a number within [0, 1] (got 2)")):
        protector.protect([HARMFUL], threshold=2)
    with pytest.raises(
        ConfigError, match=re.escape("action: must be one of pass, refuse, detoxify, raise (got 'explode')")
    ):
        protector.protect([HARMFUL], action="explode")  # type: ignore[arg-type]


def test_on_error_raise_is_a_clear_error():
    with pytest.raises(ModelRuntimeError, match="detector failed: RuntimeError: CUDA out of memory"):
        Protector(FailingDetector()).protect([HARMFUL])


def test_on_error_block_withholds_every_answer():
    results = Protector(FailingDetector(), on_error="block", refusal_text="Blocked.").protect([BENIGN, HARMFUL])
    assert [(r.output, r.action, r.checked, r.flagged) for r in results] == [("Blocked.", "block", False, True)] * 2
    assert "CUDA out of memory" in (results[0].error or "")


def test_on_error_pass_marks_answers_unchecked():
    (result,) = Protector(FailingDetector(), on_error="pass").protect([HARMFUL])
    assert (result.output, result.action, result.checked, result.harm_score) == (
        HARMFUL[1],
        "unchecked",
        False,
        None,
    )


def test_a_non_finite_score_is_a_failure_not_a_pass():
    with pytest.raises(ModelRuntimeError, match="not finite numbers in"):
        Protector(NaNDetector()).protect([BENIGN])
    (result,) = Protector(NaNDetector(), on_error="block").protect([BENIGN])
    assert result.action == "block"


class BrokenRewriter:
    def rewrite(self, pairs: Sequence[Pair]) -> list[str]:
        raise RuntimeError("generation failed")


class EmptyRewriter:
    def rewrite(self, pairs: Sequence[Pair]) -> list[str]:
        return ["   "] * len(pairs)


def test_failed_rewrite_refuses_unless_on_error_raise(protector: Protector):
    detector = protector.detector
    with pytest.raises(ModelRuntimeError, match="rewriter failed: RuntimeError: generation failed"):
        Protector(detector, BrokenRewriter()).protect([HARMFUL])
    (result,) = Protector(detector, BrokenRewriter(), on_error="pass", refusal_text="No.").protect([HARMFUL])
    assert (result.output, result.action) == ("No.", "refuse")  # a known-harmful answer is never passed on
    assert "generation failed" in (result.error or "")


def test_empty_rewrite_falls_back_to_refusal(protector: Protector):
    (result,) = Protector(protector.detector, EmptyRewriter(), refusal_text="No.").protect([HARMFUL])
    assert (result.output, result.action) == ("No.", "refuse")
    assert "empty" in (result.error or "")


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        ([("q", 5)], "pair 0: answer must be text"),
        ([("q", "a"), (None, "a")], "pair 1: question must be text"),
        ([("only one",)], "pair 0: expected Pair"),
        ("a string", "got a single value"),
        ([{"question": "q", "answer": "a"}], "pair 0: expected Pair"),
        ([BENIGN, ("q", "ok \ud800")], r"pair 1: answer is not valid text: it holds a lone surrogate '\\ud800' at "),
        ([("\udfff", "a")], "pair 0: question is not valid text: .* at character 0, which is not Unicode"),
        (None, r"expected a list of \(question, answer\) pairs, got NoneType None; pass a list of pairs"),
        (5, r"got int 5; pass a list of pairs, e.g. \[\(question, answer\)\]"),
        (("q", "a"), r"got one tuple of 2 strings .*, not a list of pairs; pass a list of pairs, e.g. \[\("),
        (["q", "a"], "got one list of 2 strings"),
        ({"question": "q", "answer": "a"}, "got a mapping"),
        (Pair("q", "a"), "got a single Pair"),
    ],
)
def test_bad_pairs_are_rejected_before_any_model_runs(pairs, message):
    protector = Protector(FailingDetector(), on_error="pass")
    with pytest.raises(InvalidInputError, match=message):
        protector.protect(pairs)
    with pytest.raises(InvalidInputError, match=message):
        protector.check(pairs)


def test_constructor_validates_policy():
    with pytest.raises(ConfigError, match="threshold"):
        Protector(threshold=-0.1)
    with pytest.raises(ConfigError, match="on_error"):
        Protector(on_error="ignore")  # type: ignore[arg-type]


def test_nothing_in_nothing_out(protector: Protector):
    assert protector.protect([]) == []
    assert protector.check([]) == []


async def test_async_protect_matches_sync(protector: Protector):
    assert await protector.aprotect([HARMFUL, BENIGN]) == protector.protect([HARMFUL, BENIGN])
    assert await protector.acheck([BENIGN]) == protector.check([BENIGN])


def test_models_load_lazily(detector_config: dict):
    protector = Protector.from_config(detector_config)
    assert protector._detector is None
    protector.check([BENIGN])
    assert protector._detector is not None


def test_a_model_that_cannot_load_raises_whatever_on_error(tmp_path):
    three = save_tiny_classifier(tmp_path / "three-labels", num_labels=3)
    config = {"detector": {"model": {"source": str(three)}}, "on_error": "pass"}
    with pytest.raises(ModelLoadError, match=r"loading the detector failed: .*1- or 2-output head"):
        Protector.from_config(config).protect([HARMFUL])  # not a batch of `unchecked` answers


def test_a_rewriter_that_cannot_load_raises_whatever_on_error(tmp_path, detector_config: dict):
    rewriter = {"kind": "causal_lm", "model": {"source": str(tmp_path / "nowhere")}}
    protector = Protector.from_config({**detector_config, "rewriter": rewriter, "on_error": "block"})
    assert protector.protect([BENIGN])[0].output == BENIGN[1]  # nothing to rewrite: the rewriter is not needed
    with pytest.raises(ModelLoadError, match="nowhere"):
        protector.protect([HARMFUL])  # not a silent refusal


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"detector": "models/detector"}, r"a detector needs a score\(pairs\) .* got str .*Protector.from_config"),
        ({"rewriter": "models/detoxifier"}, r"a rewriter needs a rewrite\(pairs\) -> list\[str\] method; got str"),
        ({"refusal_text": None}, r"refusal_text must be text \(str\), got None"),
    ],
)
def test_the_constructor_rejects_what_would_fail_later(arguments: dict, message: str):
    with pytest.raises(ConfigError, match=message):
        Protector(on_error="pass", **arguments)


def test_harmful_content_error_survives_pickling(detector_config: dict):
    with pytest.raises(HarmfulContentError) as caught:
        Protector.from_config({**detector_config, "action": "raise"}).protect([BENIGN, HARMFUL])
    copy = pickle.loads(pickle.dumps(caught.value))
    assert copy.results == caught.value.results
    assert str(copy) == str(caught.value)


def test_evaluation_refuses_unscored_pairs():
    examples = [LabelledPair(*HARMFUL, harmful=True), LabelledPair(*BENIGN, harmful=False)]
    with pytest.raises(ModelRuntimeError, match=r"could not score 2 of 2 pairs .*CUDA out of memory.*every score"):
        evaluate(Protector(FailingDetector(), on_error="pass"), examples)


@pytest.mark.parametrize(
    ("given", "hint"),
    [
        ("runs/a/protector.yaml", "use Protector.from_yaml(path)"),
        ("runs/a", "use Protector.from_config({'detector': {'model': {'source': path}}})"),
    ],
)
def test_a_path_given_as_the_detector_says_how_to_load_it(given: str, hint: str):
    with pytest.raises(ConfigError, match=re.escape(hint)):
        Protector(given)  # type: ignore[arg-type]


def test_an_answer_with_no_text_passes_without_reaching_the_detector(detector_config: dict):
    """Even at threshold 0, where every scored answer is flagged; the same through the micro-batcher."""
    import asyncio

    from detector_support import GatedDetector

    for batching in (None, {"max_wait_ms": 1}):
        protector = Protector.from_config({**detector_config, "batching": batching})
        recorder = GatedDetector(protector.detector)
        protector = Protector(detector=recorder, batching=protector.config.batching if batching else None)
        pairs = [HARMFUL, ("what now?", ""), ("and?", "  \n\t")]
        harmful, empty, blank = protector.protect(pairs, threshold=0.0)
        assert harmful.flagged
        for result, pair in ((empty, pairs[1]), (blank, pairs[2])):
            assert (result.harm_score, result.flagged, result.action, result.output) == (0.0, False, "none", pair[1])
        assert asyncio.run(protector.acheck(pairs[1:], threshold=0.0)) == [Verdict(0.0, False)] * 2
        assert recorder.sizes == [1]  # only the worded answer was scored
        protector.close()
