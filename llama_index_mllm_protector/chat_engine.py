"""``ProtectedChatEngine``: checks each chat answer against the user's turn, streaming included."""

from __future__ import annotations

import asyncio
import logging
import threading
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
from llama_index_mllm_protector.events import dispatch_verdicts
from llama_index_mllm_protector.guarding import METADATA_KEY, aprotect, protect, verdict_metadata
from llama_index_mllm_protector.messages import UserTurn, memory_of, replace_last_answer, user_turn
from llama_index_mllm_protector.streams import areplay, replay
from llama_index_mllm_protector.verified import PENDING, areleased, released, stream_verdict
from protector_models import (
    ConfigError,
    Pair,
    Protector,
    ProtectorConfig,
    Result,
    StreamOutcome,
    VerifiedStream,
)
from protector_models.config.schema import Action, check_action, check_threshold
from protector_models.streaming import separator

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
    yielded, then the original chunks (benign) or the replacement (flagged) come out; or, with the protector's
    ``streaming.release: verified``, released as the detector's windows over them pass (the memory then keeps
    what the user saw when a stream is stopped or left before its end). When an answer is replaced, or raised
    (``action="raise"``, or a detector failure under ``on_error="raise"``), the inner engine's memory gets the
    replacement (the refusal, when raised) too (``repair_history``), so a harmful or unchecked text is not fed
    back to the LLM on the next turn.
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
        self._finishing: list[threading.Thread] = []  # stopped verified streams whose model LlamaIndex still reads

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
        self._settle()
        return self._chat_engine.chat_history

    def reset(self) -> None:
        """Reset the inner engine's conversation."""
        self._settle()
        self._chat_engine.reset()

    def chat(self, message: str | ChatMessage, chat_history: list[ChatMessage] | None = None) -> AgentChatResponse:
        """Chat, then check the answer; a flagged one is replaced (or raises, with ``action="raise"``)."""
        turn = user_turn(message, chat_history)
        self._settle()
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
        self._settle()
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
        """Stream the checked answer: buffered and checked in full before the first chunk is yielded, or with
        ``streaming.release: verified`` released as the detector's windows over it pass."""
        turn = user_turn(message, chat_history)
        self._settle()
        response = self._chat_engine.stream_chat(turn.message, chat_history)
        if self._protector.streaming.release == "verified":
            return self._verified(response, turn)
        deltas = list(response.response_gen)
        result = self._check(turn, "".join(deltas))
        repaired = self._repair(result)
        return self._streaming(response, deltas, result, turn, repaired)

    async def astream_chat(
        self, message: str | ChatMessage, chat_history: list[ChatMessage] | None = None
    ) -> ProtectedStreamingChatResponse:
        """:meth:`stream_chat`, async."""
        turn = user_turn(message, chat_history)
        self._settle()
        response = await self._chat_engine.astream_chat(turn.message, chat_history)
        if self._protector.streaming.release == "verified":
            return self._averified(response, turn)
        deltas = [delta async for delta in response.async_response_gen()]
        result = await self._acheck(turn, "".join(deltas))
        repaired = await self._arepair(result)
        return self._streaming(response, deltas, result, turn, repaired)

    def _verified(self, response: StreamingAgentChatResponse, turn: UserTurn) -> ProtectedStreamingChatResponse:
        """The stream released as it is verified. Stopped (or left) before its end, the answer in the memory
        becomes what the user saw, once LlamaIndex's own thread has read the model to its end (it cannot be
        stopped): in the background, settled before this engine's next call."""
        stream, metadata = self._stream(turn)
        deltas = response.response_gen  # LlamaIndex's queue; closing it waits for its thread to finish the model

        def ended(outcome: StreamOutcome | None) -> None:
            verdict = self._ended(outcome, turn, metadata)
            memory_text = self._memory_text(stream, outcome)
            if memory_text is not None:
                finishing = threading.Thread(
                    target=self._repair_after, args=(deltas, response, memory_text, verdict), daemon=True
                )
                self._finishing.append(finishing)
                finishing.start()

        chat = _chat_stream(released(stream, deltas, ended, close=lambda: None))
        return self._verified_response(response, metadata, chat, _achat_from(chat))

    def _averified(self, response: StreamingAgentChatResponse, turn: UserTurn) -> ProtectedStreamingChatResponse:
        """:meth:`_verified` for an async stream: at a stop LlamaIndex's task reading the model is cancelled, and
        the memory gets what the user saw."""
        stream, metadata = self._stream(turn)
        deltas = response.async_response_gen()

        async def stop() -> None:
            task = response.awrite_response_to_history_task
            if task is not None and not task.done():
                task.cancel()
            if task is not None:
                await asyncio.gather(task, return_exceptions=True)
            response.awrite_response_to_history_task = None  # closing the generator no longer waits for it
            await deltas.aclose()

        async def ended(outcome: StreamOutcome | None) -> None:
            verdict = self._ended(outcome, turn, metadata)
            memory_text = self._memory_text(stream, outcome)
            if memory_text is not None and self.repair_history:
                verdict["history_repaired"] = await self._aremember(response, memory_text)

        achat = _achat_stream(areleased(stream, deltas, ended, aclose=stop))
        return self._verified_response(response, metadata, None, achat)

    def _stream(self, turn: UserTurn) -> tuple[VerifiedStream, dict[str, Any]]:
        stream = self._protector.stream(turn.question, threshold=self.threshold, action=self.action)
        return stream, {self.metadata_key: dict(PENDING)}

    def _ended(self, outcome: StreamOutcome | None, turn: UserTurn, metadata: dict[str, Any]) -> dict[str, Any]:
        """The verdict into the metadata, and its event."""
        verdict = stream_verdict(outcome, images=turn.images)
        metadata[self.metadata_key] = verdict
        if outcome is not None:
            dispatch_verdicts([outcome.result], "response", images=[turn.images])
        return verdict

    def _memory_text(self, stream: VerifiedStream, outcome: StreamOutcome | None) -> str | None:
        """What the memory should keep when it is not the model's answer: what the user saw (the refusal after
        it, when the answer raised); None when the answer passed whole."""
        if outcome is None:  # the consumer left before the end
            return stream.shown
        result = outcome.result
        if result.changed:
            return outcome.shown
        if result.flagged and result.checked and (self.action or self._protector.action) == "raise":
            return outcome.shown + separator(outcome.shown) + self._protector.refusal_text
        return None

    def _repair_after(
        self,
        deltas: Generator[str, None, None],
        response: StreamingAgentChatResponse,
        text: str,
        verdict: dict[str, Any],
    ) -> None:
        deltas.close()  # waits for LlamaIndex's thread, which reads the model to its end and writes the memory
        if self.repair_history:
            verdict["history_repaired"] = self._repair(replace(_STREAMED, original=response.response, output=text))

    async def _aremember(self, response: StreamingAgentChatResponse, text: str) -> bool:
        """Put ``text`` in the memory as the turn's answer: in place of the model's, when LlamaIndex's task
        wrote it before it was cancelled, else after the user's turn."""
        memory = memory_of(self._chat_engine)
        if memory is None:
            logger.warning(_NOT_REPAIRED)
            return False
        if response.is_done:
            return await self._arepair(replace(_STREAMED, original=response.response, output=text)) or False
        await memory.aput(ChatMessage(role=MessageRole.ASSISTANT, content=text))
        return True

    def _settle(self) -> None:
        """Wait for the memory repairs of stopped streams, so the next turn sees what the user saw."""
        while self._finishing:
            self._finishing.pop().join()

    def _verified_response(
        self,
        response: StreamingAgentChatResponse,
        metadata: dict[str, Any],
        chat: Generator[ChatResponse, None, None] | None,
        achat: AsyncGenerator[ChatResponse, None],
    ) -> ProtectedStreamingChatResponse:
        return ProtectedStreamingChatResponse(
            sources=response.sources,
            source_nodes=response.source_nodes,
            chat_stream=chat,
            achat_stream=achat,
            is_writing_to_memory=False,
            metadata=metadata,
        )

    def _check(self, turn: UserTurn, answer: str) -> Result:
        pairs = [Pair(turn.question, answer)]
        kwargs: dict[str, Any] = {"threshold": self.threshold, "action": self.action, "images": [turn.images]}
        try:
            return protect(self._protector, pairs, "response", **kwargs)[0]
        except Exception:  # flagged under raise, or not checked at all: the caller gets the error, not the answer
            self._replace_in_memory(answer, self._protector.refusal_text)
            raise

    async def _acheck(self, turn: UserTurn, answer: str) -> Result:
        pairs = [Pair(turn.question, answer)]
        kwargs: dict[str, Any] = {"threshold": self.threshold, "action": self.action, "images": [turn.images]}
        try:
            return (await aprotect(self._protector, pairs, "response", **kwargs))[0]
        except Exception:
            await self._areplace_in_memory(answer, self._protector.refusal_text)
            raise

    def _repair(self, result: Result) -> bool | None:
        """Put the replacement into the inner engine's memory; None when nothing was replaced."""
        if not result.changed:
            return None
        return self._replace_in_memory(result.original, result.output)

    async def _arepair(self, result: Result) -> bool | None:
        if not result.changed:
            return None
        return await self._areplace_in_memory(result.original, result.output)

    def _replace_in_memory(self, original: str, output: str) -> bool | None:
        """Swap the memory's last answer ``original`` for ``output`` (with ``repair_history``; else None)."""
        if not self.repair_history:
            return None
        memory = memory_of(self._chat_engine)
        fixed = replace_last_answer(memory.get_all(), original, output) if memory else None
        if memory is None or fixed is None:
            logger.warning(_NOT_REPAIRED)
            return False
        memory.set(fixed)
        return True

    async def _areplace_in_memory(self, original: str, output: str) -> bool | None:
        if not self.repair_history:
            return None
        memory = memory_of(self._chat_engine)
        fixed = replace_last_answer(await memory.aget_all(), original, output) if memory else None
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


async def _achat_from(chat: Iterator[ChatResponse]) -> AsyncGenerator[ChatResponse, None]:
    """A synchronous chat stream read from async code."""
    for response in chat:
        yield response
        await asyncio.sleep(0)


_STREAMED = Result(question="", original="", output="", harm_score=None, flagged=False, action="none")
"""The template of a memory repair after a verified stream (only ``original`` and ``output`` are read)."""


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
