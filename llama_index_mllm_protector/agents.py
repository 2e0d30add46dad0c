"""Agent workflows whose final answers (and, optionally, tool calls) are checked: ``ProtectedFunctionAgent``,
``ProtectedReActAgent``, and an ``AgentWorkflow`` built from them."""

from __future__ import annotations

import json
from typing import Any

from llama_index.core.agent.workflow import BaseWorkflowAgent, FunctionAgent, ReActAgent
from llama_index.core.agent.workflow.workflow_events import AgentOutput
from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.memory import BaseMemory
from pydantic import Field, ValidationError, field_validator

from llama_index_mllm_protector.building import build_protector
from llama_index_mllm_protector.guarding import METADATA_KEY, aprotect, verdict_metadata
from llama_index_mllm_protector.messages import image_count
from protector_models import ConfigError, HarmfulContentError, Pair, Protector, Result
from protector_models.config.schema import Action, describe_validation_error


class _ProtectedAgent(BaseWorkflowAgent):
    """The guard of an agent workflow; concrete agents put it before their own class (see below)."""

    protector: Protector = Field(default_factory=Protector, exclude=True)
    """The protector, or a config, mapping, YAML path or preset name to build one from; the embedded default."""
    guard_action: Action | None = None
    """``pass``, ``refuse``, ``detoxify`` or ``raise``; None: the protector's."""
    guard_threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    """Scores at or above this are flagged; None: the protector's."""
    check_tool_calls: bool = False
    """Also judge each step's tool calls (names and JSON arguments) before any tool runs."""
    metadata_key: str = METADATA_KEY
    """Where the verdict goes on the ``AgentOutput`` (``output[metadata_key]``)."""

    def __init__(self, **kwargs: Any) -> None:
        """Bad settings raise :class:`ConfigError`, naming the field, as the engines' do."""
        try:
            super().__init__(**kwargs)
        except ValidationError as error:
            title = f"invalid {type(self).__name__} settings"
            raise ConfigError(describe_validation_error(error, type(self), title)) from None

    @field_validator("protector", mode="before")
    @classmethod
    def _build(cls, value: Any) -> Protector:
        return build_protector(value)

    async def take_step(self, ctx: Any, llm_input: list[ChatMessage], tools: Any, memory: BaseMemory) -> AgentOutput:
        """The agent's step; with ``check_tool_calls`` its tool calls are judged, and a flagged step calls none."""
        output = await super().take_step(ctx, llm_input, tools, memory)  # type: ignore[safe-super]
        if not (self.check_tool_calls and output.tool_calls):
            return output
        calls = "\n".join(
            json.dumps({"name": call.tool_name, "args": call.tool_kwargs}, sort_keys=True, default=str)
            for call in output.tool_calls
        )
        text = output.response.content or ""
        result = await self._judge(ctx, memory, f"{text}\n{calls}" if text.strip() else calls, output)
        if result.changed:  # a withheld step acts on nothing: its answer is the replacement, and the run ends
            output.response = ChatMessage(role=MessageRole.ASSISTANT, content=result.output)
            output.tool_calls = []
        return output

    async def finalize(self, ctx: Any, output: AgentOutput, memory: BaseMemory) -> AgentOutput:
        """The agent's finalize, then the final answer checked; a replaced answer is replaced in memory too."""
        before = len(await memory.aget_all())
        output = await super().finalize(ctx, output, memory)  # type: ignore[safe-super]
        if any(call.tool_name == "handoff" for call in output.tool_calls):
            return output  # a hand-over to another agent, not an answer to the user
        verdict = output.get(self.metadata_key)
        if verdict is None:  # not judged yet (a judged step that was withheld is already the replacement)
            try:
                result = await self._judge(ctx, memory, output.response.content or "", output)
            except HarmfulContentError as error:  # the caller gets the error; memory must not keep the answer
                await _replace_answer(memory, before, self.protector.refusal_text)
                raise error from None
            if result.changed:
                output.response = ChatMessage(role=MessageRole.ASSISTANT, content=result.output)
            verdict = output[self.metadata_key]
        if verdict["changed"]:
            verdict["history_repaired"] = await _replace_answer(memory, before, output.response.content or "")
        return output

    async def _judge(self, ctx: Any, memory: BaseMemory, answer: str, output: AgentOutput) -> Result:
        """One answer checked with the user's turn; the verdict goes on ``output`` and to a verdict event."""
        question = await ctx.store.get("user_msg_str", default=None) or ""
        images = _images(await memory.aget_all())
        try:
            (result,) = await aprotect(
                self.protector,
                [Pair(question, answer)],
                "response",
                threshold=self.guard_threshold,
                action=self.guard_action,
                images=[images],
            )
        except HarmfulContentError as error:
            output[self.metadata_key] = verdict_metadata(error.results[0], images=images)
            raise
        output[self.metadata_key] = verdict_metadata(result, images=images)
        return result


class ProtectedFunctionAgent(_ProtectedAgent, FunctionAgent):
    """A ``FunctionAgent`` whose final answers are checked with the user's message (see the module)."""


class ProtectedReActAgent(_ProtectedAgent, ReActAgent):
    """A ``ReActAgent`` whose final answers (the text after ``Answer:``) are checked with the user's message."""


async def _replace_answer(memory: BaseMemory, before: int, replacement: str) -> bool:
    """Replace the last assistant message this turn added to ``memory``; False when it added none."""
    messages = await memory.aget_all()
    added = range(len(messages) - 1, min(before, len(messages)) - 1, -1)
    for index in added:
        if messages[index].role == MessageRole.ASSISTANT:
            fixed = ChatMessage(role=MessageRole.ASSISTANT, content=replacement)
            await memory.aset([*messages[:index], fixed, *messages[index + 1 :]])
            return True
    return False


def _images(messages: list[ChatMessage]) -> int:
    """Images in the user's last message."""
    for message in reversed(messages):
        if message.role == MessageRole.USER:
            return image_count(message)
    return 0
