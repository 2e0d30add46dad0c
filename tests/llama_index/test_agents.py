"""Agent workflows: FunctionAgent, ReActAgent and an AgentWorkflow of them, final answers and tool calls checked."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from li_support import BENIGN, HARMFUL, QUESTION, BrokenDetector, recording
from llama_index.core.agent.workflow import AgentWorkflow, FunctionAgent
from llama_index.core.base.llms.types import ChatMessage, ImageBlock, MessageRole, TextBlock, ToolCallBlock
from llama_index.core.llms import MockFunctionCallingLLM

from llama_index_mllm_protector import ProtectedFunctionAgent, ProtectedReActAgent
from protector_models import ConfigError, HarmfulContentError, Pair, Protector

TOOL_CALL = ChatMessage(
    role=MessageRole.ASSISTANT,
    blocks=[ToolCallBlock(tool_call_id="call-1", tool_name="lookup", tool_kwargs={"topic": "recipe"})],
)


def lookup(topic: str) -> str:
    """Look a topic up."""
    return f"notes about {topic}"


def scripted(*replies: ChatMessage | str) -> MockFunctionCallingLLM:
    """A function-calling LLM that gives ``replies`` in turn, whatever it is asked."""
    pending: Iterator[ChatMessage | str] = iter(replies)

    def reply(messages: Any, **kwargs: Any) -> ChatMessage:
        message = next(pending)
        return message if isinstance(message, ChatMessage) else ChatMessage(role=MessageRole.ASSISTANT, content=message)

    return MockFunctionCallingLLM(response_generator=reply)


async def run(agent: Any, user_msg: str | ChatMessage = QUESTION) -> tuple[Any, list[ChatMessage], list[str]]:
    """The agent's output, its memory afterwards, and the names of the events it streamed."""
    handler = agent.run(user_msg=user_msg)
    streamed = [type(event).__name__ async for event in handler.stream_events()]
    output = await handler
    memory = await handler.ctx.store.get("memory")
    return output, await memory.aget_all(), streamed


async def test_a_harmful_final_answer_is_refused_in_the_output_and_in_memory(protector, verdicts):
    protector, detector = recording(protector)
    agent = ProtectedFunctionAgent(tools=[lookup], llm=scripted(TOOL_CALL, HARMFUL), protector=protector)
    output, memory, streamed = await run(agent)
    assert output.response.content == protector.refusal_text
    verdict = output["mllm_protector"]
    assert (verdict["flagged"], verdict["action"], verdict["changed"], verdict["history_repaired"]) == (
        True,
        "refuse",
        True,
        True,
    )
    assert detector.calls == [[Pair(QUESTION, HARMFUL)]]  # the tool call passed; the answer with the user's turn
    assert [(m.role, m.content) for m in memory][-2:] == [
        (MessageRole.TOOL, "notes about recipe"),
        (MessageRole.ASSISTANT, protector.refusal_text),
    ]
    assert not any(HARMFUL in (m.content or "") for m in memory)
    assert [(e.target, e.question, e.answer, e.action) for e in verdicts] == [("response", QUESTION, HARMFUL, "refuse")]
    assert "ToolCallResult" in streamed


async def test_a_benign_answer_passes_unchanged(protector):
    protector, detector = recording(protector)
    output, memory, _ = await run(ProtectedFunctionAgent(tools=[lookup], llm=scripted(BENIGN), protector=protector))
    assert output.response.content == BENIGN
    assert (output["mllm_protector"]["action"], output["mllm_protector"]["changed"]) == ("none", False)
    assert memory[-1].content == BENIGN
    assert detector.calls == [[Pair(QUESTION, BENIGN)]]


async def test_images_in_the_users_message_are_counted(protector):
    image = ImageBlock(image=b"\x89PNG\r\n\x1a\n" + b"0" * 16, image_mimetype="image/png")
    message = ChatMessage(role=MessageRole.USER, blocks=[image, TextBlock(text=QUESTION)])
    output, _, _ = await run(ProtectedFunctionAgent(tools=[lookup], llm=scripted(BENIGN), protector=protector), message)
    assert output["mllm_protector"]["images"] == 1


async def test_a_react_agent_is_judged_on_its_answer(protector):
    protector, detector = recording(protector)
    reply = f"Thought: I can answer without using any more tools.\nAnswer: {HARMFUL}"
    output, memory, _ = await run(ProtectedReActAgent(tools=[lookup], llm=scripted(reply), protector=protector))
    assert output.response.content == protector.refusal_text
    assert detector.calls == [[Pair(QUESTION, HARMFUL)]]  # the answer, without the thought
    assert not any(HARMFUL in (m.content or "") for m in memory)


async def test_tool_calls_are_judged_on_request_and_a_flagged_one_never_runs(protector):
    protector, detector = recording(protector)
    harmful_call = ChatMessage(
        role=MessageRole.ASSISTANT,
        blocks=[ToolCallBlock(tool_call_id="call-1", tool_name="tracked", tool_kwargs={"topic": HARMFUL})],
    )
    ran: list[str] = []

    def tracked(topic: str) -> str:
        """Look a topic up."""
        ran.append(topic)
        return "done"

    agent = ProtectedFunctionAgent(
        tools=[tracked], llm=scripted(harmful_call, BENIGN), protector=protector, check_tool_calls=True
    )
    output, memory, streamed = await run(agent)
    assert ran == []
    assert "ToolCall" not in streamed
    assert output.response.content == protector.refusal_text
    assert output["mllm_protector"]["flagged"] is True
    assert HARMFUL in detector.calls[0][0].answer
    assert '"name": "tracked"' in detector.calls[0][0].answer
    assert len(detector.calls) == 1  # the replacement is not judged again
    assert memory[-1].content == protector.refusal_text
    assert not memory[-1].blocks[1:]  # no dangling tool call

    output, _, _ = await run(
        ProtectedFunctionAgent(tools=[lookup], llm=scripted(TOOL_CALL, BENIGN), protector=protector)
    )
    assert output.response.content == BENIGN  # without check_tool_calls a call passes unjudged


async def test_action_raise_raises_and_memory_keeps_the_refusal(protector):
    agent = ProtectedFunctionAgent(tools=[lookup], llm=scripted(HARMFUL), protector=protector, guard_action="raise")
    handler = agent.run(user_msg=QUESTION)
    with pytest.raises(HarmfulContentError):
        await handler
    memory = await handler.ctx.store.get("memory")
    assert [m.content for m in await memory.aget_all()] == [QUESTION, protector.refusal_text]


@pytest.mark.parametrize(("on_error", "action"), [("block", "block"), ("pass", "unchecked")])
async def test_a_failed_detector_follows_on_error(on_error, action):
    protector = Protector(detector=BrokenDetector(), on_error=on_error)
    output, _, _ = await run(ProtectedFunctionAgent(tools=[lookup], llm=scripted(BENIGN), protector=protector))
    verdict = output["mllm_protector"]
    assert (verdict["checked"], verdict["action"]) == (False, action)
    assert (output.response.content == BENIGN) is (on_error == "pass")


async def test_an_agent_workflow_of_protected_agents_is_guarded(protector):
    protector, detector = recording(protector)
    agent = ProtectedFunctionAgent(name="helper", tools=[lookup], llm=scripted(TOOL_CALL, HARMFUL), protector=protector)
    output, memory, _ = await run(AgentWorkflow(agents=[agent]))
    assert output.response.content == protector.refusal_text
    assert detector.calls == [[Pair(QUESTION, HARMFUL)]]
    assert not any(HARMFUL in (m.content or "") for m in memory)


def test_settings_are_checked_and_the_protector_is_built_from_a_config(detector_config):
    agent = ProtectedFunctionAgent(tools=[lookup], llm=scripted(), protector=detector_config)
    assert isinstance(agent.protector, Protector)
    assert isinstance(agent, FunctionAgent)
    make: Callable[..., Any] = ProtectedFunctionAgent
    with pytest.raises(ConfigError, match="guard_threshold"):
        make(tools=[lookup], llm=scripted(), protector=agent.protector, guard_threshold=2)
    with pytest.raises(ConfigError, match="protector must be a Protector, a ProtectorConfig"):
        make(tools=[lookup], llm=scripted(), protector=42)
