"""ChatModelRewriter: the paper's detoxifier prompt sent to a LangChain chat model."""

from __future__ import annotations

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import AIMessage
from lc_support import HARMFUL, QUESTION, RunRecorder

from langchain_mllm_protector import ChatModelRewriter, MLLMProtector
from protector_models import Pair, Protector
from protector_models.models.templates import detoxify_prompt

REWRITE = "here is some bread"


def test_flagged_answer_is_rewritten_by_the_chat_model(detector):
    rewriter = ChatModelRewriter(FakeListChatModel(responses=[f"  {REWRITE}\n"]))
    guard = MLLMProtector(protector=Protector(detector=detector, rewriter=rewriter, action="detoxify"))
    recorder = RunRecorder()
    out = guard.invoke({"question": QUESTION, "answer": AIMessage(HARMFUL)}, {"callbacks": [recorder]})
    assert out["answer"].content == REWRITE
    assert out["answer"].response_metadata["mllm_protector"]["action"] == "detoxify"
    # the model got the paper's prompt, as one human message, in a run nested under the guard
    assert [[m.content for m in prompt] for prompt in recorder.chat_prompts] == [
        [detoxify_prompt(Pair(QUESTION, HARMFUL))]
    ]


def test_empty_rewrite_falls_back_to_the_refusal(detector):
    protector = Protector(detector=detector, rewriter=ChatModelRewriter(FakeListChatModel(responses=["   "])))
    out = MLLMProtector(protector=protector).invoke(HARMFUL)
    assert out == protector.refusal_text


def test_rewriter_batches_and_keeps_order():
    model = FakeListChatModel(responses=["one", "two", "three"])
    pairs = [Pair(QUESTION, f"answer {i}") for i in range(3)]
    assert ChatModelRewriter(model, max_concurrency=1).rewrite(pairs) == ["one", "two", "three"]
    assert ChatModelRewriter(model).rewrite([]) == []


def test_rewriter_from_config_next_to_a_configured_detector(detector_config):
    rewriter = ChatModelRewriter(FakeListChatModel(responses=[REWRITE]))
    guard = MLLMProtector.from_config(detector_config, rewriter=rewriter, action="detoxify")
    assert guard.invoke(HARMFUL) == REWRITE


def test_rewriter_needs_a_runnable():
    with pytest.raises(TypeError, match="chat model or Runnable"):
        ChatModelRewriter("gpt-4o")  # type: ignore[arg-type]
