"""Verified release in LangChain's types: a guarded stream yields text as the detector's windows over it pass.

The core's :class:`~protector_models.VerifiedStream` judges the text; this module reads it out of the stream's
chunks (``str``, ``AIMessageChunk``, or dicts holding them with the question) and writes what it releases back
in the same types. A message's other parts (tool calls, usage, provider metadata, non-text blocks) and the
verdict come in the last chunk, once the whole answer is judged; a dict's other keys come there too.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from langchain_core.messages import AIMessage, AIMessageChunk

from langchain_mllm_protector.messages import (
    NO_QUESTION,
    Answer,
    Question,
    answer_of,
    join_chunks,
    question_of,
    verdict_of,
)
from protector_models import HarmfulContentError, InvalidInputError, VerifiedStream
from protector_models.config.schema import Action
from protector_models.pairs import text_problem

if TYPE_CHECKING:
    from langchain_mllm_protector.runnable import MLLMProtector


class ClosableStream(Iterator[Any]):
    """A model's stream that the guard can close: closed, it ends at once and closes the model's own iterator,
    so that nothing (LangChain's tracing reads a step's input to its end) keeps the model generating."""

    def __init__(self, source: Iterator[Any]) -> None:
        self._source = source
        self._closed = False

    def __next__(self) -> Any:
        if self._closed:
            raise StopIteration
        return next(self._source)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            close = getattr(self._source, "close", None)
            if callable(close):
                close()


class AsyncClosableStream(AsyncIterator[Any]):
    """:class:`ClosableStream` for an async stream."""

    def __init__(self, source: AsyncIterator[Any]) -> None:
        self._source = source
        self._closed = False

    async def __anext__(self) -> Any:
        if self._closed:
            raise StopAsyncIteration
        return await anext(self._source)

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            close = getattr(self._source, "aclose", None)
            if callable(close):
                await close()


class WholeInput(Exception):  # noqa: N818 - a signal, not an error the caller sees
    """Raised by :meth:`VerifiedRelease.take` when the input is a whole value (a complete message), which gains
    nothing from verified release: the caller guards it whole."""


class VerifiedRelease:
    """One guarded stream: ``take`` each input chunk and yield what it returns; stop reading (and close the
    model's stream) once :attr:`done`; ``finish`` when the input ends. :attr:`verdict` is the event's payload once
    the answer is judged (also when ``HarmfulContentError`` is raised)."""

    def __init__(self, guard: MLLMProtector, threshold: float, action: Action) -> None:
        self.guard = guard
        self.threshold = threshold
        self.action: Action = action
        self.verdict: dict[str, Any] | None = None
        self._stream: VerifiedStream | None = None
        self._dict = False
        self._question: Question | None = None
        self._answer: Any = None  # the answer's chunks, joined
        self._others: Any = None  # a dict input's other keys, joined
        self._pending: list[str] = []  # text that came before the question
        self._streamed = ""
        self.before_answer: list[Any] = []
        """The input chunks before the first piece of the answer (a whole input is guarded whole with them)."""

    @property
    def done(self) -> bool:
        """Whether the stream was ended before the input did (the first flagged window)."""
        return self._stream is not None and self._stream.done

    def take(self, chunk: Any) -> list[Any]:
        """The outputs to yield for one input chunk (with the last ones, when it ended the stream)."""
        texts = [self._feed(text) for text in self._read(chunk)]
        return self._outputs(texts)

    async def atake(self, chunk: Any) -> list[Any]:
        """:meth:`take`, scoring in a worker thread."""
        texts = [await self._afeed(text) for text in self._read(chunk)]
        return self._outputs(texts)

    def finish(self) -> list[Any]:
        """The last outputs: the rest of the text or its replacement, the answer's other parts and the verdict."""
        answer = self._whole_answer()
        if answer is None:
            return [self._passed_through()]
        stream = self._open()
        if not answer.text.startswith(self._streamed):
            raise InvalidInputError("the streamed chunks' text does not add up to the joined answer's text")
        texts = [self._feed(text) for text in self._release_pending()]
        if stream.done:
            return self._outputs(texts)
        hidden = answer.text[len(self._streamed) :]  # tool calls written as text, when they are judged
        try:
            last = stream.finish(hidden)
        except HarmfulContentError:
            self._record(stream)
            raise
        return [self._wrap(text) for text in texts if text] + self._last(stream, last)

    async def afinish(self) -> list[Any]:
        """:meth:`finish`, scoring in a worker thread."""
        return await asyncio.to_thread(self.finish)

    # --- reading the input ---

    def _read(self, chunk: Any) -> list[str]:
        """Note the chunk; the answer text to feed now (none until the question is known)."""
        texts = self._note(chunk)
        if self._answer is None:
            self.before_answer.append(chunk)
        return texts

    def _note(self, chunk: Any) -> list[str]:
        if isinstance(chunk, Mapping):
            self._dict = True
            chunk = dict(chunk)
            if self.guard.verdict_key is not None and self.guard.verdict_key in chunk:
                raise InvalidInputError(
                    f"dict input already has the key {self.guard.verdict_key!r}, where the verdict goes; "
                    "set verdict_key= to a key the input does not use"
                )
            piece = chunk.pop(self.guard.answer_key, None)
            if chunk:
                self._others = join_chunks([self._others, chunk]) if self._others is not None else chunk
            if self._question is None and self.guard.question_key in chunk:
                key = self.guard.question_key
                self._question = question_of(self._others[key], where=f"input[{key!r}]")
            if piece is None:
                return self._release_pending()
        elif self._dict:
            raise InvalidInputError(f"a stream of dicts went on with {type(chunk).__name__}; stream one kind")
        else:
            self._question, piece = NO_QUESTION, chunk
        if isinstance(piece, AIMessage) and not isinstance(piece, AIMessageChunk):
            raise WholeInput
        if not isinstance(piece, str | AIMessageChunk):
            raise InvalidInputError(
                "MLLMProtector streams str or AIMessageChunk chunks, or dicts of them with "
                f"{self.guard.question_key!r} and {self.guard.answer_key!r}; got {type(piece).__name__}"
            )
        self._answer = join_chunks([self._answer, piece]) if self._answer is not None else piece
        text = piece if isinstance(piece, str) else str(piece.text)
        problem = text_problem(text)
        if problem:
            raise InvalidInputError(f"the streamed answer is not valid text: {problem}; repair the text first")
        self._pending.append(text)
        return self._release_pending()

    def _release_pending(self) -> list[str]:
        """The text that waited for the question, once the question is known."""
        if self._question is None or not self._pending:
            return []
        text, self._pending = "".join(self._pending), []
        self._streamed += text
        return [text]

    def _open(self) -> VerifiedStream:
        if self._stream is None:
            assert self._question is not None
            question, protector = self._question.text, self.guard.protector
            self._stream = protector.stream(question, threshold=self.threshold, action=self.action)
        return self._stream

    def _feed(self, text: str) -> str:
        stream = self._open()
        try:
            return stream.feed(text)
        except HarmfulContentError:
            self._record(stream)
            raise

    async def _afeed(self, text: str) -> str:
        stream = self._open()
        try:
            return await stream.afeed(text)
        except HarmfulContentError:
            self._record(stream)
            raise

    def _whole_answer(self) -> Answer | None:
        """The whole answer as ``invoke`` reads it; None for a message that only calls tools (it passes)."""
        if self._question is None:
            raise InvalidInputError(
                f"the streamed dict input lacks {self.guard.question_key!r}: it needs {self.guard.question_key!r} "
                f"(the user's question) and {self.guard.answer_key!r} (the model's answer)"
            )
        if self._answer is None:
            raise InvalidInputError(f"the stream held no answer (no {self.guard.answer_key!r} chunk)")
        return answer_of(self._answer, check_tool_calls=self.guard.check_tool_calls, where="the streamed answer")

    # --- writing the output ---

    def _outputs(self, texts: list[str]) -> list[Any]:
        """Released texts in the input's types, and the last outputs when the stream was stopped."""
        outputs = [self._wrap(text) for text in texts if text]
        if self._stream is not None and self._stream.done:
            outputs += self._last(self._stream, "")
        return outputs

    def _wrap(self, text: str) -> Any:
        """Released text in the input's type."""
        if isinstance(self._answer, AIMessageChunk):
            piece: Any = AIMessageChunk(content=text, id=self._answer.id)
        else:
            piece = text
        return {self.guard.answer_key: piece} if self._dict else piece

    def _last(self, stream: VerifiedStream, text: str) -> list[Any]:
        verdict = self._record(stream)
        outcome = stream.outcome
        assert outcome is not None
        answer = self._answer
        if isinstance(answer, AIMessageChunk):
            piece: Any = _last_chunk(answer, text, verdict, self.guard.metadata_key, changed=outcome.result.changed)
        else:
            piece = text
        if not self._dict and self.guard.verdict_key is None:
            return [piece] if piece != "" else []
        out = {**(self._others or {}), self.guard.answer_key: piece}
        if self.guard.verdict_key is not None:
            out[self.guard.verdict_key] = verdict
        return [out]

    def _record(self, stream: VerifiedStream) -> dict[str, Any]:
        outcome = stream.outcome
        assert outcome is not None
        assert self._question is not None
        answer = answer_of(self._answer, check_tool_calls=self.guard.check_tool_calls) if self._answer else None
        verdict = verdict_of(outcome.result, self._question, answer or Answer(""), self.threshold)
        verdict["stream"] = outcome.metadata()
        self.verdict = verdict
        return verdict

    def _passed_through(self) -> Any:
        """A message that only calls tools: passed untouched, in one piece."""
        self.verdict = {"action": "skipped", "checked": False, "reason": "tool calls without text"}
        if self._dict:
            return {**(self._others or {}), self.guard.answer_key: self._answer}
        return self._answer


def _last_chunk(answer: AIMessageChunk, text: str, verdict: dict[str, Any], key: str, *, changed: bool) -> Any:
    """The last chunk of a guarded message: the last text, and the message's other parts with the verdict. A
    replaced message loses its tool calls and reasoning, as in ``invoke``."""
    kwargs = answer.additional_kwargs
    extra_blocks: list[Any] = []
    if not changed and isinstance(answer.content, list):  # non-text blocks (media, reasoning, ...) pass on
        extra_blocks = [b for b in answer.content if not (isinstance(b, dict) and b.get("type") == "text")]
        extra_blocks = [b for b in extra_blocks if not isinstance(b, str)]
    return AIMessageChunk(
        content=[text, *extra_blocks] if extra_blocks else text,
        id=answer.id,
        additional_kwargs={k: v for k, v in kwargs.items() if k != "reasoning_content"} if changed else kwargs,
        response_metadata={**answer.response_metadata, key: verdict},
        usage_metadata=answer.usage_metadata,
        tool_call_chunks=[] if changed else answer.tool_call_chunks,
        chunk_position=answer.chunk_position,
    )
