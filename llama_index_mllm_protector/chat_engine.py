"""``ProtectedChatEngine``: checks each chat answer against the user's turn, streaming included."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Self

from llama_index.core.base.llms.types import ChatMessage, ChatResponse, MessageRole
from llama_index.core.chat_engine.types import (
    AgentChatResponse,
    BaseChatEngine,
    StreamingAgentChatResponse,
)
from llama_index.core.llms import LLM

from llama_index_mllm_protector.building import (
    ProtectorSource,
    build_protector,
)
from llama_index_mllm_protector.guarding import METADATA_KEY, aprotect, protect, verdict_metadata
from llama_index_mllm_protector.messages import UserTurn, memory_of, replace_last_answer, user_turn
from llama_index_mllm_protector.streams import areplay, replay
from protector_models import ConfigError, HarmfulContentError, Pair, Protector, ProtectorConfig, Result
from protector_models.config.schema import Action, check_action, check_threshold

logger = logging.getLogger(__name__)
_NOT_REPAIRED = (
    "mllm-protector: the flagged answer was replaced in the response but not in the chat engine's memory "
    "(no memory found, or its last answer differs); pass chat_history explicitly on the next turn"
)


@dataclass
class ProtectedStreamingChatResponse(StreamingAgentChatResponse):
    """A ``StreamingAgentChatResponse`` that also carries the verdict in ``metadata``."""

    metadata: dict[str, Any] | None = None


class ProtectedChatEngine(BaseChatEngine):
    """Wraps any chat engine; each answer is checked with the user's turn and replaced when flagged.

    ``chat``/``achat`` return an ``AgentChatResponse``, ``stream_chat``/``astream_chat`` a
    :class:`ProtectedStreamingChatResponse`, with sources and source nodes kept and the verdict under
    ``metadata["mllm_protector"]``. Streams are buffered: the whole answer is checked before anything is
    yielded, then the original chunks (benign) or the replacement (flagged) come out. When an answer is
    replaced, or raised with ``action="raise"``, the inner engine's memory gets the replacement (the refusal,
    for ``raise``) too (``repair_history``), so the harmful text is not fed back to the LLM on the next turn.
    """

    def __init__(
        self,
        chat_engine: BaseChatEngine,
        protector: ProtectorSource = None,
        *,
        action: Action | None = None,
        threshold: float | None = None,
        detoxify_llm: LLM | None = None,
        metadata_key: str = METADATA_KEY,
        repair_history: bool = True,
    ) -> None:
        if not isinstance(chat_engine, BaseChatEngine):
            raise ConfigError(
                f"chat_engine must be a LlamaIndex BaseChatEngine, e.g. index.as_chat_engine(); "
                f"got {type(chat_engine).__name__}"
            )
        self._chat_engine = chat_engine
        self._protector = build_protector(protector, detoxify_llm=detoxify_llm)
        self.action = check_action(action)
        self.threshold = check_threshold(threshold)
        self.metadata_key = metadata_key
        self.repair_history = repair_history

    @classmethod
    def from_config(
        cls,
        chat_engine: BaseChatEngine,
        config: ProtectorConfig | Mapping[str, Any] | str | Path,
        **kwargs: Any,
    ) -> Self:
        """Wrap ``chat_engine`` with a protector built from a config, a dict, a YAML path or a preset name."""
        return cls(chat_engine, Protector.from_config(config), **kwargs)

    @classmethod
    def from_yaml(cls, chat_engine: BaseChatEngine, path: str | Path, **kwargs: Any) -> Self:
        """Wrap ``chat_engine`` with a protector built from the core's YAML file."""
        return cls(chat_engine, Protector.from_yaml(path), **kwargs)

    @classmethod
    def from_preset(cls, chat_engine: BaseChatEngine, name: str, **kwargs: Any) -> Self:
        """Wrap ``chat_engine`` with a protector built from a named preset."""
        return cls(chat_engine, Protector.from_preset(name), **kwargs)

    @property
    def protector(self) -> Protector:
        """The protector doing the checking."""
        return self._protector

    @property
    def chat_engine(self) -> BaseChatEngine:
        """The wrapped chat engine."""
        return self._chat_engine

    @property
    def chat_history(self) -> list[ChatMessage]:
        """The inner engine's history (with replaced answers, when ``repair_history`` could repair it)."""
        return self._chat_engine.chat_history

    def reset(self) -> None:
        """Reset the inner engine's conversation."""
        self._chat_engine.reset()

    def chat(self, message: str | ChatMessage, chat_history: list[ChatMessage] | None = None) -> AgentChatResponse:
        """Chat, then check the answer; a flagged one is replaced (or raises, with ``action="raise"``)."""
        turn = user_turn(message, chat_history)
        response = self._chat_engine.chat(turn.message, chat_history)
        if isinstance(response, StreamingAgentChatResponse):
            answer = "".join(response.response_gen)
        else:
            answer = response.response
        result = self._check(turn, answer)
        repaired = self._repair(result)
        return self._finished(response, result, turn, repaired)

    async def achat(
        self, message: str | ChatMessage, chat_history: list[ChatMessage] | None = None
    ) -> AgentChatResponse:
        """:meth:`chat`, async; the detector runs in a worker thread."""
        turn = user_turn(message, chat_history)
        response = await self._chat_engine.achat(turn.message, chat_history)
        if isinstance(response, StreamingAgentChatResponse):
            answer = "".join([delta async for delta in response.async_response_gen()])
        else:
            answer = response.response
        result = await self._acheck(turn, answer)
        repaired = await self._arepair(result)
        return self._finished(response, result, turn, repaired)

    def stream_chat(
        self, message: str | ChatMessage, chat_history: list[ChatMessage] | None = None
    ) -> ProtectedStreamingChatResponse:
        """Stream the checked answer: buffered and checked in full before the first chunk is yielded."""
        turn = user_turn(message, chat_history)
        response = self._chat_engine.stream_chat(turn.message, chat_history)
        deltas = list(response.response_gen)
        result = self._check(turn, "".join(deltas))
        repaired = self._repair(result)
        return self._streaming(response, deltas, result, turn, repaired)

    async def astream_chat(
        self, message: str | ChatMessage, chat_history: list[ChatMessage] | None = None
    ) -> ProtectedStreamingChatResponse:
        """:meth:`stream_chat`, async."""
        turn = user_turn(message, chat_history)
        response = await self._chat_engine.astream_chat(turn.message, chat_history)
        deltas = [delta async for delta in response.async_response_gen()]
        result = await self._acheck(turn, "".join(deltas))
        repaired = await self._arepair(result)
        return self._streaming(response, deltas, result, turn, repaired)

    def _check(self, turn: UserTurn, answer: str) -> Result:
        pairs = [Pair(turn.question, answer)]
        kwargs: dict[str, Any] = {"threshold": self.threshold, "action": self.action, "images": [turn.images]}
        try:
            return protect(self._protector, pairs, "response", **kwargs)[0]
        except HarmfulContentError as error:  # the caller gets the error; the memory must not keep the answer
            self._repair(self._refused(error))
            raise

    async def _acheck(self, turn: UserTurn, answer: str) -> Result:
        pairs = [Pair(turn.question, answer)]
        kwargs: dict[str, Any] = {"threshold": self.threshold, "action": self.action, "images": [turn.images]}
        try:
            return (await aprotect(self._protector, pairs, "response", **kwargs))[0]
        except HarmfulContentError as error:
            await self._arepair(self._refused(error))
            raise

    def _refused(self, error: HarmfulContentError) -> Result:
        """The raised answer as the memory should keep it: refused."""
        return replace(error.results[0], output=self._protector.refusal_text)

    def _repair(self, result: Result) -> bool | None:
        """Put the replacement into the inner engine's memory; None when nothing was replaced."""
        if not (result.changed and self.repair_history):
            return None
        memory = memory_of(self._chat_engine)
        fixed = replace_last_answer(memory.get_all(), result.original, result.output) if memory else None
        if memory is None or fixed is None:
            logger.warning(_NOT_REPAIRED)
            return False
        memory.set(fixed)
        return True

    async def _arepair(self, result: Result) -> bool | None:
        if not (result.changed and self.repair_history):
            return None
        memory = memory_of(self._chat_engine)
        fixed = replace_last_answer(await memory.aget_all(), result.original, result.output) if memory else None
        if memory is None or fixed is None:
            logger.warning(_NOT_REPAIRED)
            return False
        await memory.aset(fixed)
        return True

    def _metadata(
        self, metadata: dict[str, Any] | None, result: Result, turn: UserTurn, repaired: bool | None
    ) -> dict[str, Any]:
        extra: dict[str, Any] = {"images": turn.images}
        if repaired is not None:
            extra["history_repaired"] = repaired
        return {**(metadata or {}), self.metadata_key: verdict_metadata(result, **extra)}

    def _finished(
        self,
        response: AgentChatResponse | StreamingAgentChatResponse,
        result: Result,
        turn: UserTurn,
        repaired: bool | None,
    ) -> AgentChatResponse:
        metadata = response.metadata if isinstance(response, AgentChatResponse) else None
        return AgentChatResponse(
            response=result.output,
            sources=response.sources,
            source_nodes=response.source_nodes,
            is_dummy_stream=isinstance(response, AgentChatResponse) and response.is_dummy_stream,
            metadata=self._metadata(metadata, result, turn, repaired),
        )

    def _streaming(
        self,
        response: StreamingAgentChatResponse,
        deltas: list[str],
        result: Result,
        turn: UserTurn,
        repaired: bool | None,
    ) -> ProtectedStreamingChatResponse:
        return ProtectedStreamingChatResponse(
            response=response.response if not result.changed else result.output,
            sources=response.sources,
            source_nodes=response.source_nodes,
            chat_stream=_chat_stream(replay(deltas, result)),
            achat_stream=_achat_stream(areplay(deltas, result)),
            is_writing_to_memory=False,
            metadata=self._metadata(None, result, turn, repaired),
        )


def _chat_stream(deltas: Iterator[str]) -> Generator[ChatResponse, None, None]:
    text = ""
    for delta in deltas:
        text += delta
        yield ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=text), delta=delta)


async def _achat_stream(deltas: AsyncIterator[str]) -> AsyncGenerator[ChatResponse, None]:
    text = ""
    async for delta in deltas:
        text += delta
        yield ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=text), delta=delta)
        await asyncio.sleep(0)
