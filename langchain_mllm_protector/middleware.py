"""``MLLMProtectorMiddleware``: guards every model response inside ``langchain.agents.create_agent``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Self

from langchain_core.messages import AIMessage, BaseMessage

from langchain_mllm_protector.runnable import MLLMProtector
from protector_models import Protector, ProtectorConfig, Rewriter

try:
    from langchain.agents.middleware import AgentMiddleware, ModelRequest, ModelResponse
except ImportError as error:
    raise ImportError(
        "MLLMProtectorMiddleware needs the `langchain` package (create_agent): pip install 'langchain>=1.0,<2' "
        "(or, in a clone of mllm-protector, pip install '.[agents]')"
    ) from error


class MLLMProtectorMiddleware(AgentMiddleware):
    """Guards each AI message the agent's model returns, with the request's messages as the question.

    The guarded message keeps its id (so the state's ``add_messages`` reducer keeps one copy of it) and
    carries the verdict in ``response_metadata``; messages that only call tools pass untouched unless the
    guard's ``check_tool_calls`` is set. Each check is an ``MLLMProtector`` run nested in the model node,
    with its custom event.

    >>> agent = create_agent(model, tools, middleware=[MLLMProtectorMiddleware()])  # doctest: +SKIP
    """

    def __init__(self, guard: MLLMProtector | Protector | None = None, **fields: Any) -> None:
        super().__init__()
        if isinstance(guard, MLLMProtector):
            self.guard = type(guard)(**{**dict(guard), **fields}) if fields else guard  # validated
        else:
            self.guard = MLLMProtector(protector=guard or Protector(), **fields)

    @classmethod
    def from_config(
        cls,
        config: ProtectorConfig | Mapping[str, Any] | str | Path,
        *,
        rewriter: Rewriter | None = None,
        **fields: Any,
    ) -> Self:
        """From a core config (object, mapping, YAML path or preset name)."""
        return cls(MLLMProtector.from_config(config, rewriter=rewriter, **fields))

    @classmethod
    def from_yaml(cls, path: str | Path, *, rewriter: Rewriter | None = None, **fields: Any) -> Self:
        """From the YAML file that :meth:`MLLMProtector.from_yaml` reads (``protector:`` + ``langchain:``)."""
        return cls(MLLMProtector.from_yaml(path, rewriter=rewriter, **fields))

    def wrap_model_call(self, request: ModelRequest, handler: Callable[[ModelRequest], ModelResponse]) -> ModelResponse:
        """Call the model, then guard its AI messages in one batch."""
        response = handler(request)
        inputs, where = self._inputs(request, response)
        if not inputs:
            return response
        return self._replace(response, where, self.guard.batch(inputs))

    async def awrap_model_call(
        self, request: ModelRequest, handler: Callable[[ModelRequest], Awaitable[ModelResponse]]
    ) -> ModelResponse:
        """Async :meth:`wrap_model_call`."""
        response = await handler(request)
        inputs, where = self._inputs(request, response)
        if not inputs:
            return response
        return self._replace(response, where, await self.guard.abatch(inputs))

    def _inputs(self, request: ModelRequest, response: ModelResponse) -> tuple[list[dict[str, Any]], list[int]]:
        where = [i for i, message in enumerate(response.result) if isinstance(message, AIMessage)]
        question = list(request.messages)
        inputs = [{self.guard.question_key: question, self.guard.answer_key: response.result[i]} for i in where]
        return inputs, where

    def _replace(self, response: ModelResponse, where: list[int], outputs: list[dict[str, Any]]) -> ModelResponse:
        result: list[BaseMessage] = list(response.result)
        for index, output in zip(where, outputs, strict=True):
            result[index] = output[self.guard.answer_key]
        return ModelResponse(result=result, structured_response=response.structured_response)
