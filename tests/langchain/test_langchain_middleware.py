"""MLLMProtectorMiddleware inside a real create_agent loop (model -> tool -> model)."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from lc_support import BENIGN, HARMFUL, QUESTION, RunRecorder

from langchain_mllm_protector import MLLMProtector, MLLMProtectorMiddleware
from protector_models import Pair

CALL = {"name": "lookup", "args": {"topic": "recipe"}, "id": "call-1", "type": "tool_call"}


@tool
def lookup(topic: str) -> str:
    """Look a topic up."""
    return f"notes about {topic}"


class ToolFakeModel(GenericFakeChatModel):
    """GenericFakeChatModel that accepts tools, so create_agent can run a tool loop with it."""

    def bind_tools(self, tools: Any, **kwargs: Any) -> ToolFakeModel:
        return self


def agent_answering(final: str, middleware: MLLMProtectorMiddleware) -> Any:
    messages = iter([AIMessage("", tool_calls=[CALL], id="ai-1"), AIMessage(final, id="ai-2")])
    return create_agent(model=ToolFakeModel(messages=messages), tools=[lookup], middleware=[middleware])


def test_middleware_rewrites_the_final_answer_in_an_agent_loop(guard, detector, refusal):
    state = agent_answering(HARMFUL, MLLMProtectorMiddleware(guard)).invoke({"messages": [HumanMessage(QUESTION)]})
    messages = state["messages"]
    assert [type(m) for m in messages] == [HumanMessage, AIMessage, ToolMessage, AIMessage]
    assert messages[1].tool_calls[0]["id"] == "call-1"  # the tool call passed untouched
    assert messages[2].content == "notes about recipe"
    final = messages[3]
    assert final.id == "ai-2"
    assert final.content == refusal
    assert final.response_metadata["mllm_protector"]["flagged"] is True
    assert detector.calls == [[Pair(QUESTION, HARMFUL)]]  # only the text answer, with the user's question


async def test_middleware_async_keeps_benign_answers(guard, detector):
    agent = agent_answering(BENIGN, MLLMProtectorMiddleware(guard))
    state = await agent.ainvoke({"messages": [HumanMessage(QUESTION)]})
    final = state["messages"][-1]
    assert final.content == BENIGN
    assert final.id == "ai-2"
    assert final.response_metadata["mllm_protector"]["action"] == "none"
    assert detector.calls == [[Pair(QUESTION, BENIGN)]]


def test_middleware_check_runs_nest_in_the_agent_and_emit_events(guard):
    recorder = RunRecorder()
    agent = agent_answering(HARMFUL, MLLMProtectorMiddleware(guard))
    agent.invoke({"messages": [HumanMessage(QUESTION)]}, {"callbacks": [recorder]})
    guard_runs = [(run, parent) for name, run, parent in recorder.chains if name == "MLLMProtector"]
    assert len(guard_runs) == 2  # one per model response (the tool call passes, but is still recorded)
    assert all(parent is not None for _, parent in guard_runs)
    assert [data["action"] for _, data, _ in recorder.events] == ["skipped", "refuse"]


def test_middleware_fields_and_protector(guard, detector):
    middleware = MLLMProtectorMiddleware(guard.protector, action="pass")
    assert isinstance(middleware.guard, MLLMProtector)
    state = agent_answering(HARMFUL, middleware).invoke({"messages": [HumanMessage(QUESTION)]})
    final = state["messages"][-1]
    assert final.content == HARMFUL
    assert final.response_metadata["mllm_protector"]["action"] == "annotate"


def test_middleware_without_langchain_says_how_to_install(monkeypatch):
    import langchain_mllm_protector

    monkeypatch.setitem(sys.modules, "langchain.agents.middleware", None)  # as if `langchain` were missing
    monkeypatch.delitem(sys.modules, "langchain_mllm_protector.middleware")
    with pytest.raises(
        ImportError,
        match=r"pip install 'langchain>=1.0,<2' \(or, in a clone of mllm-protector, pip install '\.\[agents\]'\)",
    ):
        _ = langchain_mllm_protector.MLLMProtectorMiddleware


def test_the_package_imports_without_langchain():
    code = "import sys; sys.modules['langchain'] = None; import langchain_mllm_protector as m; m.MLLMProtector()"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr


def test_nostream_model_streams_only_the_checked_message(guard, refusal):
    """The documented recipe: a `nostream` tag keeps the raw tokens out of stream_mode="messages"."""
    model = GenericFakeChatModel(messages=iter([AIMessage(HARMFUL, id="ai-1")]), tags=["nostream"])
    agent = create_agent(model=model, tools=[], middleware=[MLLMProtectorMiddleware(guard)])
    streamed = [m for m, _ in agent.stream({"messages": [HumanMessage(QUESTION)]}, stream_mode="messages")]
    ai_text = [m.content for m in streamed if isinstance(m, AIMessage) and m.content]
    assert ai_text == [refusal]


def test_middleware_fields_override_a_given_guard(guard):
    middleware = MLLMProtectorMiddleware(guard, answer_key="output", threshold=0.2)
    assert (middleware.guard.answer_key, middleware.guard.threshold) == ("output", 0.2)
    assert middleware.guard.protector is guard.protector
    assert guard.answer_key == "answer"
    with pytest.raises(ValueError, match="action"):
        MLLMProtectorMiddleware(guard, action="delete")
