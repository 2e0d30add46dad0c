"""A detoxifier backed by any LlamaIndex ``LLM``, prompted with the paper's detoxify template."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.llms import LLM

from protector_models import ConfigError, Pair
from protector_models.models.templates import detoxify_prompt

RewriteMode = Literal["auto", "complete", "chat"]


class LlamaIndexRewriter:
    """Rewrites flagged answers with a LlamaIndex LLM: one call per answer, in input order.

    ``mode="auto"`` uses ``llm.chat`` for chat models (``llm.metadata.is_chat_model``) and ``llm.complete``
    otherwise. The prompt is :func:`protector_models.models.templates.detoxify_prompt`, the one the paper's
    detoxifier was trained on. The protector refuses instead when a rewrite comes back empty.
    """

    def __init__(self, llm: LLM, *, mode: RewriteMode = "auto") -> None:
        if not isinstance(llm, LLM):
            raise ConfigError(
                f"detoxify_llm must be a LlamaIndex LLM (llama_index.core.llms.LLM); got {type(llm).__name__}"
            )
        if mode not in ("auto", "complete", "chat"):
            raise ConfigError(f"mode: must be one of auto, complete, chat (got {mode!r})")
        self.llm = llm
        self.mode: RewriteMode = mode

    def rewrite(self, pairs: Sequence[Pair]) -> list[str]:
        """The LLM's corrected response for each pair, stripped of surrounding whitespace."""
        return [self._rewrite_one(pair) for pair in pairs]

    def _rewrite_one(self, pair: Pair) -> str:
        prompt = detoxify_prompt(pair)
        if self._use_chat():
            reply = self.llm.chat([ChatMessage(role=MessageRole.USER, content=prompt)])
            return (reply.message.content or "").strip()
        return self.llm.complete(prompt).text.strip()

    def _use_chat(self) -> bool:
        if self.mode == "auto":
            return bool(self.llm.metadata.is_chat_model)
        return self.mode == "chat"
