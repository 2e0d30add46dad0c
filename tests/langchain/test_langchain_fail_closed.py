"""The LangChain guard fails closed: every input type can carry its verdict (unchecked answers included), bad
text fails only its own slot, and excluding UNCHECKED_TAG hides every unchecked text from event streams."""

from __future__ import annotations

import logging

import pytest
from faults import FailingDetector
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.prompts import ChatPromptTemplate
from lc_support import BENIGN, HARMFUL, QUESTION

import langchain_mllm_protector
import llama_index_mllm_protector
import protector_models
from langchain_mllm_protector import UNCHECKED_TAG, InvalidInputError, LangChainSettings, MLLMProtector
from protector_models import Protector


@pytest.fixture
def unchecking(keyword_detector) -> MLLMProtector:
    """A guard whose detector fails, with on_error: pass."""
    return MLLMProtector(protector=Protector(FailingDetector(keyword_detector), action="refuse", on_error="pass"))


def test_with_verdict_gives_a_str_its_verdict(unchecking, guard, refusal):
    out = unchecking.with_verdict().invoke(HARMFUL)
    assert out["answer"] == HARMFUL
    verdict = out["mllm_protector"]
    assert (verdict["checked"], verdict["action"], verdict["harm_score"]) == (False, "unchecked", None)
    assert "CUDA out of memory" in verdict["error"]

    checked = guard.with_verdict("v")
    harmful = checked.invoke(HARMFUL)
    assert (harmful["answer"], harmful["v"]["action"], harmful["v"]["checked"]) == (refusal, "refuse", True)
    benign = checked.invoke(BENIGN)
    assert benign["answer"] is BENIGN or benign["answer"] == BENIGN
    assert (benign["v"]["checked"], benign["v"]["action"]) == (True, "none")


def test_verdict_key_gives_a_dict_its_verdict(unchecking):
    guard = MLLMProtector(protector=unchecking.protector, verdict_key="verdict")
    out = guard.invoke({"question": QUESTION, "answer": HARMFUL, "other": [1]})
    assert (out["question"], out["answer"], out["other"]) == (QUESTION, HARMFUL, [1])
    assert (out["verdict"]["checked"], out["verdict"]["action"]) == (False, "unchecked")
    message = guard.invoke({"question": QUESTION, "answer": AIMessage(HARMFUL)})["answer"]
    assert message.response_metadata["mllm_protector"]["checked"] is False


def test_verdict_key_never_overwrites_an_input_key(unchecking):
    guard = unchecking.with_verdict("other")
    with pytest.raises(InvalidInputError, match="dict input already has the key 'other', where the verdict goes"):
        guard.invoke({"question": QUESTION, "answer": HARMFUL, "other": 1})


def test_an_unchecked_str_without_a_verdict_key_is_logged(unchecking, caplog):
    with caplog.at_level(logging.WARNING, logger="langchain_mllm_protector"):
        assert unchecking.invoke(HARMFUL) == HARMFUL
    assert "could not check" in caplog.text
    assert "verdict_key" in caplog.text


def test_verdict_key_is_a_yaml_setting(tmp_path, detector_config):
    path = tmp_path / "guard.yaml"
    path.write_text(
        f"protector:\n  detector:\n    model:\n      source: {detector_config['detector']['model']['source']}\n"
        "langchain:\n  verdict_key: verdict\n"
    )
    guard = MLLMProtector.from_yaml(path)
    assert guard.verdict_key == "verdict"
    assert "verdict_key: verdict" in guard.to_yaml()


@pytest.mark.parametrize("guard_name", ["guard", "unchecking"])
def test_invalid_text_fails_only_its_slot(request, detector, guard_name):
    guard = request.getfixturevalue(guard_name)
    inputs = [BENIGN, "bad \ud800", {"question": "\udfff", "answer": BENIGN}, AIMessage("x\ud800")]
    out = guard.batch(inputs, return_exceptions=True)
    assert out[0] == BENIGN
    assert [type(o) for o in out[1:]] == [InvalidInputError] * 3
    assert "input is not valid text: it holds a lone surrogate '\\ud800' at character 4" in str(out[1])
    assert "the question is not valid text" in str(out[2])
    if guard_name == "guard":
        assert detector.calls == [[protector_models.Pair("", BENIGN)]]


def wrapped(guard: MLLMProtector):
    return guard.wrap(GenericFakeChatModel(messages=iter([HARMFUL])))


def chained(guard: MLLMProtector):
    prompt = ChatPromptTemplate.from_messages([("human", "{question}")])
    model = GenericFakeChatModel(messages=iter([HARMFUL]))
    return prompt | model.with_config(tags=[UNCHECKED_TAG]) | guard.with_config(tags=[UNCHECKED_TAG])


@pytest.mark.parametrize(("form", "question"), [(wrapped, QUESTION), (chained, {"question": QUESTION})])
async def test_excluding_the_unchecked_tag_hides_every_raw_text(guard, refusal, form, question):
    everything = [e async for e in form(guard).astream_events(question, version="v2")]
    assert any(HARMFUL in repr(e["data"]) for e in everything)  # the raw answer is there to hide

    shown = [e async for e in form(guard).astream_events(question, version="v2", exclude_tags=[UNCHECKED_TAG])]
    assert not [e for e in shown if "poison" in repr(e["data"])]
    verdicts = [e["data"] for e in shown if e["event"] == "on_custom_event"]
    assert [(v["flagged"], v["action"]) for v in verdicts] == [(True, "refuse")]
    final = [e for e in shown if e["event"] == "on_chain_end" and not e["parent_ids"]]
    assert final[0]["data"]["output"].content == refusal


@pytest.mark.parametrize("package", [langchain_mllm_protector, llama_index_mllm_protector])
def test_the_errors_users_catch_are_exported(package):
    for name in ("ProtectorError", "HarmfulContentError", "InvalidInputError", "ModelRuntimeError", "ConfigError"):
        assert name in package.__all__
        assert getattr(package, name) is getattr(protector_models, name)


def test_reasoning_is_reported_unread_and_dropped_with_a_replaced_answer(guard, refusal):
    benign = AIMessage([{"type": "reasoning", "reasoning": HARMFUL}, {"type": "text", "text": BENIGN}])
    out = guard.invoke(benign)
    assert out.content == benign.content  # benign text: passed as given, but the unread block is on record
    assert out.response_metadata["mllm_protector"]["unchecked_media"] == ["reasoning"]

    harmful = AIMessage(HARMFUL, additional_kwargs={"reasoning_content": HARMFUL, "other": 1})
    out = guard.invoke(harmful)
    assert out.content == refusal
    assert out.additional_kwargs == {"other": 1}  # the reasoning behind a harmful answer goes with it
    assert [block["type"] for block in out.content_blocks] == ["text"]


@pytest.mark.parametrize("cls", [AIMessage, AIMessageChunk])
def test_a_replaced_answer_loses_its_tool_calls(guard, refusal, cls):
    call = {"name": "search", "args": {"query": "suppliers"}, "id": "call-1", "type": "tool_call"}
    out = guard.invoke(cls(HARMFUL, tool_calls=[call], id="m1"))  # check_tool_calls is off: only the text is judged
    assert (out.content, out.id, out.tool_calls) == (refusal, "m1", [])
    benign = cls(BENIGN, tool_calls=[call], id="m2")
    assert guard.invoke(benign).tool_calls == benign.tool_calls  # a benign turn keeps them


def test_a_replaced_answer_loses_the_providers_raw_tool_calls(guard, refusal):
    raw_call = {"id": "call-1", "type": "function", "function": {"name": "search", "arguments": '{"q": "x"}'}}
    kwargs = {"tool_calls": [raw_call], "function_call": raw_call["function"], "other": 1}
    out = guard.invoke(AIMessage(HARMFUL, additional_kwargs=kwargs, id="m1"))
    assert out.content == refusal
    assert out.additional_kwargs == {"other": 1}  # langchain-openai would send the raw calls back next turn
    benign = AIMessage(BENIGN, additional_kwargs=kwargs)
    assert guard.invoke(benign).additional_kwargs == kwargs


@pytest.mark.parametrize("keys", [{"verdict_key": "answer"}, {"verdict_key": "question"}, {"answer_key": "question"}])
def test_keys_that_would_overwrite_each_other_are_rejected(guard, keys):
    with pytest.raises(ValueError, match="question_key, answer_key and verdict_key must differ"):
        MLLMProtector(protector=guard.protector, **keys)
    with pytest.raises(ValueError, match="must differ"):
        LangChainSettings(**keys)
