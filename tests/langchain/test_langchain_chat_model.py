"""ProtectedChatModel: a chat model whose answers are guarded, with tools, structured output and in create_agent."""

from __future__ import annotations

from typing import Any

import pytest
from faults import FailingDetector
from langchain.agents import create_agent
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, SystemMessage, ToolMessage
from langchain_core.outputs import ChatGenerationChunk
from langchain_core.tools import tool
from lc_support import BENIGN, HARMFUL, QUESTION, RunRecorder
from pydantic import BaseModel

from langchain_mllm_protector import UNCHECKED_TAG, MLLMProtector, ProtectedChatModel
from protector_models import HarmfulContentError, ModelRuntimeError, Pair, Protector

CALL = {"name": "lookup", "args": {"topic": "recipe"}, "id": "call-1", "type": "tool_call"}


@tool
def lookup(topic: str) -> str:
    """Look a topic up."""
    return f"notes about {topic}"


class Recipe(BaseModel):
    """A recipe."""

    steps: str


class ToolFakeModel(GenericFakeChatModel):
    """GenericFakeChatModel that records what bind_tools was given and answers with its scripted messages."""

    bound: list[tuple[list[str], dict[str, Any]]] = []  # noqa: RUF012 (one list per instance: see fake())

    def bind_tools(self, tools: Any, **kwargs: Any) -> ToolFakeModel:
        names = [getattr(t, "name", None) or getattr(t, "__name__", None) or t["name"] for t in tools]
        self.bound.append((names, kwargs))
        return self

    def _stream(self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any) -> Any:
        """Text word by word, tool calls in one chunk (the parent class cannot stream tool calls)."""
        message = self._generate(messages, stop=stop, **kwargs).generations[0].message
        words = message.content.split(" ") if message.content else []
        for index, word in enumerate(words):
            yield ChatGenerationChunk(message=AIMessageChunk(content=f" {word}" if index else word, id=message.id))
        if message.tool_calls or not words:
            yield ChatGenerationChunk(message=AIMessageChunk(**{**message.model_dump(exclude={"type"}), "content": ""}))


def fake(*answers: AIMessage | str) -> ToolFakeModel:
    return ToolFakeModel(messages=iter(answers), bound=[])


def conversation() -> list[Any]:
    return [SystemMessage("be helpful"), HumanMessage(QUESTION)]


def test_a_harmful_answer_is_refused_with_its_id_and_verdict(guard, detector, refusal):
    model = ProtectedChatModel(model=fake(AIMessage(HARMFUL, id="ai-1")), guard=guard)
    assert isinstance(model, BaseChatModel)
    answer = model.invoke(conversation())
    assert (type(answer), answer.content, answer.id) == (AIMessage, refusal, "ai-1")
    verdict = answer.response_metadata["mllm_protector"]
    assert (verdict["flagged"], verdict["action"], verdict["saw_question"]) == (True, "refuse", True)
    assert detector.calls == [[Pair(QUESTION, HARMFUL)]]  # the last human turn is the question


async def test_a_benign_answer_passes_unchanged_async(guard, detector):
    model = ProtectedChatModel(model=fake(AIMessage(BENIGN, id="ai-1")), guard=guard)
    answer = await model.ainvoke(conversation())
    assert (answer.content, answer.id) == (BENIGN, "ai-1")
    assert answer.response_metadata["mllm_protector"]["action"] == "none"
    assert detector.calls == [[Pair(QUESTION, BENIGN)]]


def test_streaming_yields_the_checked_answer_whole(guard, refusal):
    chunks = list(ProtectedChatModel(model=fake(HARMFUL), guard=guard).stream(conversation()))
    assert [chunk.content for chunk in chunks] == [refusal]
    benign = list(ProtectedChatModel(model=fake(BENIGN), guard=guard).stream(conversation()))
    assert [chunk.content for chunk in benign] == [BENIGN]  # the fake streams word by word; one checked answer out


async def test_astream_events_without_the_unchecked_tag_show_only_checked_text(guard, refusal):
    model = ProtectedChatModel(model=fake(HARMFUL), guard=guard)
    events = [e async for e in model.astream_events(conversation(), version="v2")]
    raw = "".join(e["data"]["chunk"].content for e in events if e["event"] == "on_chat_model_stream")
    assert raw == HARMFUL  # the wrapped model's own tokens, visible unless excluded

    model = ProtectedChatModel(model=fake(HARMFUL), guard=guard)
    hidden = [e async for e in model.astream_events(conversation(), version="v2", exclude_tags=[UNCHECKED_TAG])]
    assert "poison" not in repr(hidden)
    ends = [e for e in hidden if e["event"] == "on_chat_model_end"]
    assert [(e["name"], e["data"]["output"].content) for e in ends] == [("ProtectedChatModel", refusal)]
    custom = [e for e in hidden if e["event"] == "on_custom_event"]
    assert [(e["name"], e["data"]["action"]) for e in custom] == [("mllm_protector", "refuse")]


def test_the_model_and_guard_runs_nest_under_the_protected_model(guard):
    recorder = RunRecorder()
    ProtectedChatModel(model=fake(HARMFUL), guard=guard).invoke(conversation(), {"callbacks": [recorder]})
    _, parent = recorder.run("MLLMProtector")
    assert parent is not None
    assert [data["action"] for _, data, _ in recorder.events] == ["refuse"]
    assert len(recorder.chat_prompts) == 2  # this model's run and the wrapped model's, nested


def test_on_error_block_and_pass_as_in_wrap(keyword_detector):
    def guarded(on_error: str) -> ProtectedChatModel:
        protector = Protector(FailingDetector(keyword_detector), action="refuse", on_error=on_error)
        return ProtectedChatModel(model=fake(AIMessage(BENIGN, id="ai-1")), guard=MLLMProtector(protector=protector))

    blocked = guarded("block").invoke(conversation())
    assert blocked.content != BENIGN
    assert blocked.response_metadata["mllm_protector"]["action"] == "block"
    passed = guarded("pass").invoke(conversation())
    assert passed.content == BENIGN
    verdict = passed.response_metadata["mllm_protector"]
    assert (verdict["checked"], verdict["action"]) == (False, "unchecked")


def test_bind_tools_keeps_the_guard_and_tool_calls_pass(guard, detector, refusal):
    inner = fake(AIMessage("", tool_calls=[CALL], id="ai-1"), AIMessage(HARMFUL, id="ai-2"))
    bound = ProtectedChatModel(model=inner, guard=guard).bind_tools([lookup], tool_choice="auto")
    assert isinstance(bound, ProtectedChatModel)
    assert inner.bound == [(["lookup"], {"tool_choice": "auto"})]
    call = bound.invoke(conversation())
    assert call.tool_calls[0]["id"] == "call-1"
    assert call.response_metadata == {}  # a tool-call-only turn passes untouched
    assert bound.invoke(conversation()).content == refusal
    assert detector.calls == [[Pair(QUESTION, HARMFUL)]]


def test_structured_output_judges_the_arguments(guard, detector):
    benign = fake(AIMessage("", tool_calls=[{**CALL, "name": "Recipe", "args": {"steps": BENIGN}}]))
    structured = ProtectedChatModel(model=benign, guard=guard).with_structured_output(Recipe)
    assert structured.invoke(conversation()) == Recipe(steps=BENIGN)
    assert benign.bound[0][0] == ["Recipe"]
    assert len(detector.calls) == 1
    assert BENIGN in detector.calls[0][0].answer  # the arguments were judged, not passed as a tool call

    harmful = fake(AIMessage("", tool_calls=[{**CALL, "name": "Recipe", "args": {"steps": HARMFUL}}]))
    structured = ProtectedChatModel(model=harmful, guard=guard).with_structured_output(Recipe, include_raw=True)
    with pytest.raises(HarmfulContentError):  # a refusal has no place in the schema: it raises, never None
        structured.invoke(conversation())


def test_structured_output_withheld_by_on_error_block_raises(keyword_detector):
    protector = Protector(FailingDetector(keyword_detector), action="refuse", on_error="block")
    answer = AIMessage("", tool_calls=[{**CALL, "name": "Recipe", "args": {"steps": BENIGN}}])
    model = ProtectedChatModel(model=fake(answer), guard=MLLMProtector(protector=protector))
    with pytest.raises(ModelRuntimeError, match="could not be checked"):
        model.with_structured_output(Recipe).invoke(conversation())


def test_create_agent_takes_it_as_its_model(guard, detector, refusal):
    inner = fake(AIMessage("", tool_calls=[CALL], id="ai-1"), AIMessage(HARMFUL, id="ai-2"))
    agent = create_agent(model=ProtectedChatModel(model=inner, guard=guard), tools=[lookup])
    messages = agent.invoke({"messages": [HumanMessage(QUESTION)]})["messages"]
    assert [type(m) for m in messages] == [HumanMessage, AIMessage, ToolMessage, AIMessage]
    assert messages[2].content == "notes about recipe"
    assert (messages[3].id, messages[3].content) == ("ai-2", refusal)
    assert messages[3].response_metadata["mllm_protector"]["flagged"] is True
    assert detector.calls == [[Pair(QUESTION, HARMFUL)]]
    assert inner.bound[0][0] == ["lookup"]


def test_an_agent_streaming_messages_never_shows_the_unchecked_tokens(guard, refusal):
    inner = fake(AIMessage("", tool_calls=[CALL], id="ai-1"), AIMessage(HARMFUL, id="ai-2"))
    agent = create_agent(model=ProtectedChatModel(model=inner, guard=guard), tools=[lookup])
    streamed = [
        chunk.content
        for chunk, _ in agent.stream({"messages": [HumanMessage(QUESTION)]}, stream_mode="messages")
        if isinstance(chunk, AIMessage)
    ]
    assert refusal in streamed
    assert not any("poison" in text for text in streamed)


def test_the_wrapped_models_profile_is_its_own(guard):
    """create_agent picks its structured-output strategy from the model's profile: the wrapped model's."""
    inner = fake(BENIGN)
    inner.profile = {"structured_output": True, "tool_calling": True}
    assert ProtectedChatModel(model=inner, guard=guard).profile == inner.profile
    assert ProtectedChatModel(model=inner, guard=guard).bind_tools([lookup]).profile == inner.profile
