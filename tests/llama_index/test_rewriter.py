"""LlamaIndexRewriter and building protectors from what a user passes."""

from __future__ import annotations

import pytest
from li_support import HARMFUL, QUESTION, ScriptedLLM

from llama_index_mllm_protector import LlamaIndexRewriter, build_protector
from protector_models import ConfigError, Pair, Protector
from protector_models.models.templates import detoxify_prompt


@pytest.mark.parametrize("chat_model", [False, True])
def test_rewriter_sends_the_paper_prompt_and_strips_the_reply(chat_model: bool) -> None:
    llm = ScriptedLLM(reply="\n Some safe text. \n", chat_model=chat_model)
    pairs = [Pair(QUESTION, HARMFUL), Pair("", "steal a weapon")]
    assert LlamaIndexRewriter(llm).rewrite(pairs) == ["Some safe text.", "Some safe text."]
    assert len(llm.prompts) == 2
    for prompt, pair in zip(llm.prompts, pairs, strict=True):
        assert detoxify_prompt(pair) in prompt  # chat models get it as the user message


def test_rewriter_modes_pick_complete_or_chat() -> None:
    llm = ScriptedLLM(reply="ok", chat_model=False)
    LlamaIndexRewriter(llm, mode="complete").rewrite([Pair(QUESTION, HARMFUL)])
    LlamaIndexRewriter(llm, mode="chat").rewrite([Pair(QUESTION, HARMFUL)])
    assert llm.prompts[0] == detoxify_prompt(Pair(QUESTION, HARMFUL))
    assert llm.prompts[1] != llm.prompts[0]  # chat wraps the prompt as a user message
    assert detoxify_prompt(Pair(QUESTION, HARMFUL)) in llm.prompts[1]
    with pytest.raises(ConfigError, match="mode: must be one of auto, complete, chat"):
        LlamaIndexRewriter(llm, mode="stream")  # type: ignore[arg-type]


def test_with_rewriter_keeps_policy_and_shares_the_detector_lazily(detector_config: dict) -> None:
    base = Protector.from_config({**detector_config, "threshold": 0.7, "action": "detoxify"})
    rewired = base.with_rewriter(LlamaIndexRewriter(ScriptedLLM(reply="Some cake instead.")))
    assert base._detector is None, "building the rewired protector must not load the detector"
    assert (rewired.threshold, rewired.action, rewired.config) == (0.7, "detoxify", base.config)
    result = rewired.protect_one(QUESTION, HARMFUL)
    assert result.output == "Some cake instead."
    assert result.action == "detoxify"
    assert base._detector is not None, "the base protector's detector did the scoring"


def test_an_empty_rewrite_falls_back_to_the_refusal(protector: Protector) -> None:
    rewired = build_protector(protector, detoxify_llm=ScriptedLLM(reply="   "))
    result = rewired.protect_one(QUESTION, HARMFUL, action="detoxify")
    assert result.output == protector.refusal_text
    assert result.action == "refuse"


def test_build_protector_sources(detector_config: dict) -> None:
    existing = Protector.from_config(detector_config)
    assert build_protector(existing) is existing
    assert build_protector(detector_config).config is not None
    assert build_protector("default").config is not None
    assert isinstance(build_protector(), Protector)
    with pytest.raises(ConfigError, match="unknown key"):
        build_protector({**detector_config, "treshold": 0.3})
    with pytest.raises(ConfigError, match="detoxify_llm must be a LlamaIndex LLM"):
        build_protector(existing, detoxify_llm=object())  # type: ignore[arg-type]
