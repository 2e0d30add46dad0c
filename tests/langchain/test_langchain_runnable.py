"""MLLMProtector as a Runnable: types round-trip, harmful answers are replaced, benign ones are untouched."""

from __future__ import annotations

import asyncio
import re

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel, GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, SystemMessage
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import ConfigurableField
from lc_support import BENIGN, HARMFUL, QUESTION, RunRecorder

from langchain_mllm_protector import UNCHECKED_TAG
from protector_models import HarmfulContentError, InvalidInputError, Pair


def test_str_in_str_out(guard, refusal):
    assert guard.invoke(HARMFUL) == refusal
    benign = guard.invoke(BENIGN)
    assert type(benign) is str
    assert benign == BENIGN


@pytest.mark.parametrize("cls", [AIMessage, AIMessageChunk])
def test_message_keeps_class_id_and_metadata(guard, refusal, cls):
    usage = {"input_tokens": 3, "output_tokens": 7, "total_tokens": 10}
    kept = {"id": "msg-1", "response_metadata": {"model_name": "fake"}, "usage_metadata": usage}
    harmful = guard.invoke(cls(HARMFUL, additional_kwargs={"k": 1}, **kept))
    benign = guard.invoke(cls(BENIGN, **kept))

    for out in (harmful, benign):
        assert type(out) is cls
        assert out.id == "msg-1"
        assert out.usage_metadata == usage
        assert out.response_metadata["model_name"] == "fake"
    assert harmful.content == refusal
    assert harmful.additional_kwargs == {"k": 1}
    assert harmful.response_metadata["mllm_protector"]["flagged"] is True
    assert harmful.response_metadata["mllm_protector"]["action"] == "refuse"
    assert harmful.response_metadata["mllm_protector"]["saw_question"] is False
    assert benign.content == BENIGN
    assert benign.response_metadata["mllm_protector"]["flagged"] is False
    assert benign.response_metadata["mllm_protector"]["harm_score"] < 0.5


def test_dict_form_gives_the_detector_the_question(guard, detector, refusal):
    out = guard.invoke({"question": QUESTION, "answer": HARMFUL, "context": [1, 2]})
    assert out == {"question": QUESTION, "answer": refusal, "context": [1, 2]}
    assert detector.calls == [[Pair(QUESTION, HARMFUL)]]


def test_dict_keys_are_configurable(detector, guard):
    custom = guard.model_copy(update={"question_key": "input", "answer_key": "output"})
    out = custom.invoke({"input": QUESTION, "output": AIMessage(BENIGN, id="m")})
    assert out["output"].content == BENIGN
    assert out["output"].id == "m"
    assert detector.calls == [[Pair(QUESTION, BENIGN)]]


def test_multimodal_question_gives_its_text_and_counts_images(guard, detector):
    human = HumanMessage(
        content=[
            {"type": "text", "text": QUESTION},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            {"type": "image", "url": "https://example.com/cat.png"},
        ]
    )
    conversation = [SystemMessage("be nice"), HumanMessage("earlier turn"), AIMessage("ok"), human]
    out = guard.invoke({"question": conversation, "answer": AIMessage(BENIGN)})
    assert detector.calls == [[Pair(QUESTION, BENIGN)]]
    verdict = out["answer"].response_metadata["mllm_protector"]
    assert verdict["question_images"] == 2
    assert verdict["saw_question"] is True


def test_wrap_gives_the_detector_the_last_human_turn(guard, detector, refusal):
    prompt = ChatPromptTemplate.from_messages([("system", "you are helpful"), ("human", "{q}")])
    chain = prompt | guard.wrap(FakeListChatModel(responses=[HARMFUL]))
    out = chain.invoke({"q": QUESTION})
    assert isinstance(out, AIMessage)
    assert out.content == refusal
    assert detector.calls == [[Pair(QUESTION, HARMFUL)]]


def test_batch_is_one_detector_call(guard, detector, refusal):
    inputs = [HARMFUL, AIMessage(BENIGN), {"question": QUESTION, "answer": HARMFUL}, BENIGN]
    outs = guard.batch(inputs)
    assert len(detector.calls) == 1
    assert detector.calls[0] == [
        Pair("", HARMFUL),
        Pair("", BENIGN),
        Pair(QUESTION, HARMFUL),
        Pair("", BENIGN),
    ]
    assert outs[0] == refusal
    assert outs[1].content == BENIGN
    assert outs[2]["answer"] == refusal
    assert outs[3] == BENIGN


async def test_abatch_is_one_detector_call(guard, detector, refusal):
    outs = await guard.abatch([HARMFUL, BENIGN, HARMFUL])
    assert outs == [refusal, BENIGN, refusal]
    assert len(detector.calls) == 1


def test_wrapped_batch_is_one_detector_call(guard, detector, refusal):
    model = FakeListChatModel(responses=[HARMFUL, BENIGN, BENIGN])
    questions = ["how do i make it", "tell me about this", "can you help me"]
    outs = guard.wrap(model).batch(questions, {"max_concurrency": 1})  # the fake answers in call order
    assert [o.content for o in outs] == [refusal, BENIGN, BENIGN]
    assert detector.calls == [[Pair(q, a) for q, a in zip(questions, [HARMFUL, BENIGN, BENIGN], strict=True)]]


@pytest.mark.parametrize("answer", [HARMFUL, BENIGN])
async def test_stream_astream_ainvoke_match_invoke(guard, answer):
    def chain():
        return GenericFakeChatModel(messages=iter([answer])) | guard

    expected = chain().invoke("hi").content
    streamed = list(chain().stream("hi"))
    astreamed = [chunk async for chunk in chain().astream("hi")]
    assert len(streamed) == 1  # buffered: no unchecked token leaks out of the guard
    assert all(isinstance(c, AIMessageChunk) for c in streamed + astreamed)
    assert "".join(c.content for c in streamed) == expected
    assert "".join(c.content for c in astreamed) == expected
    assert (await chain().ainvoke("hi")).content == expected
    assert (answer == BENIGN) == (expected == BENIGN)


async def test_wrapped_stream_and_astream_match_invoke(guard, refusal):
    def wrapped():
        return guard.wrap(GenericFakeChatModel(messages=iter([HARMFUL])))

    assert wrapped().invoke(QUESTION).content == refusal
    assert "".join(c.content for c in wrapped().stream(QUESTION)) == refusal
    assert "".join([c.content async for c in wrapped().astream(QUESTION)]) == refusal
    assert (await wrapped().ainvoke(QUESTION)).content == refusal


def test_str_stream(guard, refusal):
    assert list(guard.transform(iter(["first mix the ", "poison and use it"]))) == [refusal]
    assert list(guard.transform(iter(["here is some cake", " and bread"]))) == [BENIGN]


async def test_raw_tokens_appear_in_events_unless_excluded(guard, refusal):
    def wrapped():
        return guard.wrap(GenericFakeChatModel(messages=iter([HARMFUL])))

    events = [e async for e in wrapped().astream_events(QUESTION, version="v2")]
    raw = "".join(e["data"]["chunk"].content for e in events if e["event"] == "on_chat_model_stream")
    assert raw == HARMFUL  # the caveat: the inner model's own stream is visible to event consumers

    hidden = [e async for e in wrapped().astream_events(QUESTION, version="v2", exclude_tags=[UNCHECKED_TAG])]
    assert not [e for e in hidden if e["event"] == "on_chat_model_stream"]
    ends = [e for e in hidden if e["event"] == "on_chain_end" and e["name"] == "ProtectedGenericFakeChatModel"]
    assert ends[0]["data"]["output"].content == refusal


def test_callbacks_see_a_nested_run_and_the_event(guard):
    recorder = RunRecorder()
    chain = FakeListChatModel(responses=[HARMFUL]) | guard
    chain.invoke("hi", {"callbacks": [recorder]})
    sequence_id, _ = recorder.run("RunnableSequence")
    guard_id, guard_parent = recorder.run("MLLMProtector")
    assert guard_parent == sequence_id
    assert len(recorder.events) == 1
    name, data, event_run = recorder.events[0]
    assert name == "mllm_protector"
    assert event_run == guard_id
    assert data["flagged"] is True
    assert data["action"] == "refuse"


async def test_custom_event_per_input_in_astream_events_and_batch(guard):
    events = [e async for e in guard.astream_events(HARMFUL, version="v2")]
    custom = [e for e in events if e["event"] == "on_custom_event"]
    assert [e["name"] for e in custom] == ["mllm_protector"]
    assert custom[0]["data"]["flagged"] is True

    recorder = RunRecorder()
    guard.batch([HARMFUL, BENIGN], {"callbacks": [recorder]})
    assert [data["flagged"] for _, data, _ in recorder.events] == [True, False]
    assert len({run for _, _, run in recorder.events}) == 2  # each input has its own run


def test_threshold_and_action_per_call_and_configurable(guard, refusal):
    assert guard.invoke(HARMFUL, action="pass") == HARMFUL
    assert guard.bind(threshold=0.0).invoke(BENIGN) == refusal  # every score is >= 0

    configurable = guard.configurable_fields(
        threshold=ConfigurableField(id="guard_threshold"), action=ConfigurableField(id="guard_action")
    )
    assert configurable.invoke(HARMFUL) == refusal
    assert configurable.invoke(HARMFUL, {"configurable": {"guard_action": "pass"}}) == HARMFUL
    assert configurable.invoke(BENIGN, {"configurable": {"guard_threshold": 0.0}}) == refusal
    message = configurable.invoke(AIMessage(HARMFUL), {"configurable": {"guard_action": "pass"}})
    assert message.response_metadata["mllm_protector"]["action"] == "annotate"


async def test_concurrent_calls_do_not_share_state(guard, refusal):
    outs = await asyncio.gather(
        guard.ainvoke(HARMFUL, action="pass"), guard.ainvoke(HARMFUL), guard.ainvoke(BENIGN, threshold=0.0)
    )
    assert outs == [HARMFUL, refusal, refusal]
    assert guard.action is None
    assert guard.threshold is None


def test_action_raise(guard):
    with pytest.raises(HarmfulContentError) as caught:
        guard.invoke(HARMFUL, action="raise")
    assert caught.value.results[0].original == HARMFUL
    outs = guard.batch([BENIGN, HARMFUL], action="raise", return_exceptions=True)
    assert outs[0] == BENIGN
    assert isinstance(outs[1], HarmfulContentError)


def test_tool_calls_without_text_pass_untouched(guard, detector):
    call = {"name": "search", "args": {"query": "poison"}, "id": "call-1", "type": "tool_call"}
    message = AIMessage("", tool_calls=[call], id="m1")
    assert guard.invoke(message) is message
    assert detector.calls == []


def test_check_tool_calls_judges_the_arguments(guard, detector, refusal):
    call = {"name": "search", "args": {"query": "poison"}, "id": "call-1", "type": "tool_call"}
    strict = guard.model_copy(update={"check_tool_calls": True})
    out = strict.invoke(AIMessage("", tool_calls=[call], id="m1"))
    assert detector.calls[0][0].answer == '{"args": {"query": "poison"}, "name": "search"}'
    assert out.content == refusal
    assert out.tool_calls == []
    assert out.id == "m1"
    assert out.response_metadata["mllm_protector"]["judged_tool_calls"] is True


def test_check_tool_calls_judges_invalid_calls_too(guard, detector, refusal):
    invalid = {
        "name": "search",
        "args": '{"query": "poison',
        "id": "call-1",
        "error": "bad JSON",
        "type": "invalid_tool_call",
    }
    message = AIMessage("", invalid_tool_calls=[invalid], id="m1")
    assert guard.invoke(message) is message  # without check_tool_calls: passed untouched, as valid calls are
    assert detector.calls == []
    out = guard.model_copy(update={"check_tool_calls": True}).invoke(message)
    assert detector.calls[0][0].answer == '{"args": "{\\"query\\": \\"poison", "name": "search"}'
    assert (out.content, out.invalid_tool_calls, out.id) == (refusal, [], "m1")
    assert out.response_metadata["mllm_protector"]["checked"] is True


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (42, "got int"),
        (HumanMessage("hi"), "guard.wrap(chat_model)"),
        ({"answer": BENIGN}, "lacks 'question'"),
        ({"question": QUESTION}, "lacks 'answer'"),
        ({"question": 7, "answer": BENIGN}, "input['question'] must be text"),
        ({"question": QUESTION, "answer": 3.5}, "input['answer'] must be the model's answer"),
        (AIMessage(content=[{"type": "image", "url": "https://example.com/x.png"}]), "only image content"),
    ],
)
def test_bad_input_says_what_is_wrong(guard, detector, bad, message):
    with pytest.raises(InvalidInputError, match=re.escape(message)):
        guard.invoke(bad)
    assert detector.calls == []


def test_bad_input_in_a_batch_fails_only_its_slot(guard, refusal):
    outs = guard.batch([HARMFUL, 42], return_exceptions=True)
    assert outs[0] == refusal
    assert isinstance(outs[1], InvalidInputError)
    with pytest.raises(InvalidInputError):
        guard.batch([HARMFUL, 42])


def test_unknown_call_option_is_named(guard):
    with pytest.raises(TypeError, match="temperature"):
        guard.invoke(BENIGN, temperature=0.2)


def test_media_next_to_text_is_recorded_as_unchecked(guard):
    message = AIMessage(content=[{"type": "text", "text": BENIGN}, {"type": "image", "url": "https://x/y.png"}])
    out = guard.invoke(message)
    assert out.content == message.content
    assert out.response_metadata["mllm_protector"]["unchecked_media"] == ["image"]


def test_wrapped_runs_nest_under_one_named_run(guard):
    recorder = RunRecorder()
    wrapped = guard.wrap(FakeListChatModel(responses=[BENIGN]))
    assert wrapped.get_name() == "ProtectedFakeListChatModel"
    wrapped.invoke(QUESTION, {"callbacks": [recorder]})
    outer_id, outer_parent = recorder.run("ProtectedFakeListChatModel")
    _, guard_parent = recorder.run("MLLMProtector")
    assert outer_parent is None
    assert guard_parent == outer_id
    assert recorder.chat_prompts[0][0].content == QUESTION  # the model ran inside, with the input
