"""``ChatModelRewriter``: the paper's detoxifier prompt, answered by any LangChain chat model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage
from langchain_core.runnables import Runnable, RunnableConfig

from protector_models import ModelRuntimeError, Pair
from protector_models.models.templates import detoxify_prompt


class ChatModelRewriter:
    """A core ``Rewriter`` backed by a chat model (or any Runnable from messages to a message or str).

    Each flagged pair becomes one human message holding the paper's detoxifier prompt (the question and the
    harmful answer); the model's text, stripped, is the rewrite. All pairs go out in one ``batch`` call.
    Inside a guard the calls nest under the guard's run. An empty rewrite makes the protector refuse instead.

    >>> guard = MLLMProtector.from_preset("default", rewriter=ChatModelRewriter(chat_model))  # doctest: +SKIP
    """

    def __init__(self, model: Runnable[Any, Any], *, max_concurrency: int | None = None) -> None:
        if not isinstance(model, Runnable):
            raise TypeError(f"ChatModelRewriter needs a LangChain chat model or Runnable, got {type(model).__name__}")
        self.model = model
        self.max_concurrency = max_concurrency

    def rewrite(self, pairs: Sequence[Pair]) -> list[str]:
        """The model's rewrite of each pair's answer, in input order."""
        if not pairs:
            return []
        prompts = [[HumanMessage(detoxify_prompt(pair))] for pair in pairs]
        config: RunnableConfig = {"run_name": "mllm_protector_detoxify"}
        if self.max_concurrency is not None:
            config["max_concurrency"] = self.max_concurrency
        return [_text(output) for output in self.model.batch(prompts, config)]


def _text(output: Any) -> str:
    if isinstance(output, BaseMessage):
        return str(output.text).strip()
    if isinstance(output, str):
        return output.strip()
    raise ModelRuntimeError(f"the rewriting model returned {type(output).__name__}; expected a message or str")
