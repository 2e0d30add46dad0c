"""The rewrite path: batched generation equals unbatched, generation stops at EOS and is deterministic, and a
rewrite that is empty or still harmful falls back to the refusal (and says so)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from protector_models import (
    CausalLMRewriter,
    CausalLMRewriterConfig,
    ModelRuntimeError,
    Pair,
    Protector,
    ProtectorConfig,
)
from protector_models.detox.rewriters import _until
from protector_models.testing import FIXED_REWRITE

HARMFUL = ("how do i make it", "first mix the poison and use it")
PAIRS = [
    Pair("how do i make it", "first mix the poison and use it"),
    Pair("", "x"),
    Pair("can you help me with a much longer question than the others, please, now", "use a weapon " * 12),
    Pair("what should i do", "steal it"),
    Pair("tell me about this", "here is some music and some cake for the garden"),
]


def rewriter_for(directory: Path, **options: int) -> CausalLMRewriter:
    return CausalLMRewriter.from_config(
        CausalLMRewriterConfig.model_validate({"model": {"source": str(directory), "device": "cpu"}, **options})
    )


def test_left_padded_batches_give_the_unbatched_output(tiny_lm_dir: Path):
    batched = rewriter_for(tiny_lm_dir, max_new_tokens=12, batch_size=5).rewrite(PAIRS)
    alone = [rewriter_for(tiny_lm_dir, max_new_tokens=12, batch_size=1).rewrite([pair])[0] for pair in PAIRS]
    assert batched == alone
    assert len(set(batched)) > 1  # the random model answers each prompt differently: a real comparison
    assert rewriter_for(tiny_lm_dir, max_new_tokens=12, batch_size=2).rewrite(PAIRS) == batched  # deterministic


def test_generation_stops_at_eos(fixed_detoxifier_dir: Path):
    rewriter = rewriter_for(fixed_detoxifier_dir, max_new_tokens=64, batch_size=5)
    assert rewriter.rewrite(PAIRS) == [FIXED_REWRITE] * len(PAIRS)  # nothing decoded after EOS, though 64 allowed
    assert rewriter.stop_token_ids == [rewriter.tokenizer.eos_token_id]
    rewriter.model.generation_config.eos_token_id = [rewriter.tokenizer.eos_token_id, 7]
    assert rewriter.stop_token_ids == [rewriter.tokenizer.eos_token_id, 7]  # a chat model's extra end token


def test_max_new_tokens_bounds_the_rewrite(fixed_detoxifier_dir: Path):
    assert rewriter_for(fixed_detoxifier_dir, max_new_tokens=5).rewrite(PAIRS[:1]) == [FIXED_REWRITE[:5]]


def test_tokens_after_the_first_stop_token_are_dropped():
    assert _until([5, 6, 2, 7, 0, 0], [2]) == [5, 6]
    assert _until([5, 6, 9], [2, 9]) == [5, 6]
    assert _until([5, 6], [2]) == [5, 6]
    assert _until([2, 5], [2]) == []


class FixedRewriter:
    """Returns the given texts, in order (a stand-in whose output the test controls)."""

    def __init__(self, *texts: str) -> None:
        self.texts = texts

    def rewrite(self, pairs: Sequence[Pair]) -> list[str]:
        return list(self.texts[: len(pairs)])


class KeywordScores:
    """0.9 for answers naming poison, else 0.1; fails on the call numbered ``fail_on`` (1-based)."""

    def __init__(self, fail_on: int | None = None) -> None:
        self.calls: list[list[Pair]] = []
        self.fail_on = fail_on

    def score(self, pairs: Sequence[Pair]) -> list[float]:
        self.calls.append(list(pairs))
        if len(self.calls) == self.fail_on:
            raise RuntimeError("CUDA out of memory")
        return [0.9 if "poison" in pair.answer else 0.1 for pair in pairs]


def test_a_rewrite_still_scored_harmful_falls_back_to_the_refusal(protector: Protector):
    detector = protector.detector  # the keyword detector: it flags answers that name poison
    rewriter = FixedRewriter("mix the poison slowly", "here is some cake and bread")
    first, second = Protector(detector, rewriter, refusal_text="No.").protect([HARMFUL, HARMFUL])
    assert (first.output, first.action, first.flagged) == ("No.", "refuse", True)
    assert "still scored harmful" in (first.error or "")
    assert "refused instead" in (first.error or "")
    assert (second.output, second.action, second.error) == ("here is some cake and bread", "detoxify", None)


def test_rescoring_can_be_switched_off(protector: Protector, detector_config: dict):
    rewriter = FixedRewriter("mix the poison slowly")
    (result,) = Protector(protector.detector, rewriter, rescore_rewrites=False).protect([HARMFUL])
    assert (result.output, result.action) == ("mix the poison slowly", "detoxify")
    assert ProtectorConfig.from_dict(detector_config).rescore_rewrites is True
    configured = Protector.from_config({**detector_config, "rescore_rewrites": False})
    assert configured.rescore_rewrites is False
    assert configured.with_rewriter(rewriter).rescore_rewrites is False


def test_rescoring_scores_the_question_with_the_rewrite_at_the_calls_threshold():
    detector = KeywordScores()
    protector = Protector(detector, FixedRewriter("the poison, again"), threshold=0.5)
    (result,) = protector.protect([HARMFUL], threshold=0.95)  # 0.9 is below this call's threshold: not flagged
    assert result.action == "none"
    (result,) = protector.protect([("q", "poison")], threshold=0.85)
    assert detector.calls[-1] == [Pair("q", "the poison, again")]
    assert result.action == "refuse"
    assert "(0.900 >= 0.85)" in (result.error or "")


def test_rescoring_only_scores_non_empty_rewrites():
    detector = KeywordScores()
    results = Protector(detector, FixedRewriter("  ", "fine now"), refusal_text="No.").protect(
        [("q", "poison 1"), ("q", "poison 2")]
    )
    assert detector.calls[-1] == [Pair("q", "fine now")]
    assert [(r.output, r.action) for r in results] == [("No.", "refuse"), ("fine now", "detoxify")]
    assert "empty" in (results[0].error or "")


def test_a_failed_rescoring_refuses_or_raises():
    with pytest.raises(ModelRuntimeError, match="scoring the rewrite failed: RuntimeError: CUDA out of memory"):
        Protector(KeywordScores(fail_on=2), FixedRewriter("fine now")).protect([HARMFUL])
    (result,) = Protector(KeywordScores(fail_on=2), FixedRewriter("fine now"), on_error="pass").protect([HARMFUL])
    assert result.action == "refuse"  # an unchecked rewrite of a harmful answer is not passed on
    assert "scoring the rewrite failed" in (result.error or "")
