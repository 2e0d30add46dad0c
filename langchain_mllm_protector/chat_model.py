"""``ProtectedChatModel``: a chat model whose answers are guarded, usable wherever a chat model is expected."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManager, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.language_models.model_profile import ModelProfile
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.tools import BaseTool
from pydantic import Field, PrivateAttr

from langchain_mllm_protector.runnable import UNCHECKED_TAG, MLLMProtector
from protector_models import InvalidInputError, ModelRuntimeError

NOSTREAM_TAG = "nostream"
"""LangGraph's tag for a model whose tokens ``stream_mode="messages"`` must not show: the wrapped model's are
unchecked, so an agent streams this model's checked answer instead."""


class ProtectedChatModel(BaseChatModel):
    """``model``'s answers, guarded by ``guard`` with the last human turn as the question.

    A chat model itself, so it goes where one is expected: ``bind_tools``, ``with_structured_output`` and
    ``create_agent(model=ProtectedChatModel(model=...))``. Verdicts, metadata, custom events and ``on_error`` are
    ``guard``'s, as in :meth:`MLLMProtector.wrap`: the answer keeps its id and carries the verdict in
    ``response_metadata``. ``stream`` yields the checked answer as one message (this model does not stream, so
    LangChain runs it as ``invoke``). The wrapped model's run and the guard's nest under this model's run, see
    the unchecked answer and are tagged :data:`UNCHECKED_TAG` (and LangGraph's ``nostream``); this model's own
    run shows only checked text.

    >>> guarded = ProtectedChatModel(model=chat_model, guard=MLLMProtector())  # doctest: +SKIP
    >>> agent = create_agent(guarded, tools)  # doctest: +SKIP
    """

    model: Runnable[LanguageModelInput, BaseMessage]
    """The chat model to guard (or one with tools bound: what ``bind_tools`` returns)."""
    guard: MLLMProtector = Field(default_factory=MLLMProtector)
    """The guard; ``MLLMProtector()`` (the embedded default) when not given."""
    _structured: bool = PrivateAttr(default=False)

    def _resolve_model_profile(self) -> ModelProfile | None:
        """The wrapped model's profile, so agents pick the structured-output strategy they would for it."""
        return getattr(self.model, "profile", None)

    @property
    def _llm_type(self) -> str:
        inner = getattr(self.model, "_llm_type", type(self.model).__name__)
        return f"mllm-protector-{inner}"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model": getattr(self.model, "_identifying_params", {}), "guard": self.guard.settings.model_dump()}

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """The wrapped model's ``bind_tools``, guarded: a ``ProtectedChatModel`` around the bound model."""
        bind = getattr(self.model, "bind_tools", None)
        if bind is None:
            raise InvalidInputError(
                f"the wrapped model ({type(self.model).__name__}) has no bind_tools: wrap a chat model that "
                "supports tool calling"
            )
        return self._around(bind(tools, tool_choice=tool_choice, **kwargs), structured=self._structured)

    def with_structured_output(
        self, schema: dict[str, Any] | type, *, include_raw: bool = False, **kwargs: Any
    ) -> Runnable[LanguageModelInput, Any]:
        """Structured answers, judged by their tool-call arguments (``check_tool_calls``).

        A structured answer cannot be refused or rewritten in its schema: a flagged one raises
        :class:`~protector_models.HarmfulContentError` (``action: pass`` only annotates), and one withheld because
        the detector failed (``on_error: block``) raises :class:`~protector_models.ModelRuntimeError`.
        """
        action = self.guard.action or self.guard.protector.action
        guard = type(self.guard)(
            **{**dict(self.guard), "check_tool_calls": True, "action": "pass" if action == "pass" else "raise"}
        )
        structured = self._around(self.model, structured=True, guard=guard)
        return BaseChatModel.with_structured_output(structured, schema, include_raw=include_raw, **kwargs)

    def _around(self, model: Runnable[Any, Any], *, structured: bool, guard: MLLMProtector | None = None) -> Any:
        protected = type(self)(model=model, guard=guard or self.guard, profile=self.profile)
        protected._structured = structured
        return protected

    # --- the work: the wrapped model, then the guard, each a child run tagged as unchecked ---
    # No _stream: LangChain hands it no run manager, so the runs inside could not nest; a guard releases the
    # answer whole anyway, and stream() falls back to invoke.

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        answer = self.model.invoke(messages, _unchecked(run_manager), stop=stop, **kwargs)
        checked = self.guard.invoke(self._pair(messages, answer), _unchecked(run_manager))
        return ChatResult(generations=[ChatGeneration(message=self._answer(checked))])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        answer = await self.model.ainvoke(messages, _unchecked(run_manager), stop=stop, **kwargs)
        checked = await self.guard.ainvoke(self._pair(messages, answer), _unchecked(run_manager))
        return ChatResult(generations=[ChatGeneration(message=self._answer(checked))])

    def _pair(self, messages: list[BaseMessage], answer: Any) -> dict[str, Any]:
        if not isinstance(answer, AIMessage):
            raise InvalidInputError(
                f"the wrapped model returned {type(answer).__name__}, not an AIMessage: wrap a chat model"
            )
        return {self.guard.question_key: messages, self.guard.answer_key: answer}

    def _answer(self, checked: dict[str, Any]) -> AIMessage:
        message: AIMessage = checked[self.guard.answer_key]
        verdict = message.response_metadata.get(self.guard.metadata_key, {})
        if self._structured and verdict.get("changed"):
            raise ModelRuntimeError(
                f"the structured answer could not be checked ({verdict.get('error')}) and was withheld "
                "(on_error: block); a structured answer has no place for the replacement text"
            )
        return message


def _unchecked(run_manager: CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun | None) -> RunnableConfig:
    """A child run's config: nested under this model's run (as ``get_child`` nests a chain's), tagged as seeing
    the unchecked answer."""
    tags = [UNCHECKED_TAG, NOSTREAM_TAG]
    if run_manager is None:
        return {"tags": tags}
    child = CallbackManager(handlers=[], parent_run_id=run_manager.run_id)
    child.set_handlers(run_manager.inheritable_handlers)
    child.add_tags(run_manager.inheritable_tags)
    child.add_metadata(run_manager.inheritable_metadata)
    return {"callbacks": child, "tags": tags}
