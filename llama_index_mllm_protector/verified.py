"""Verified release for LlamaIndex streams: text is yielded as the detector's windows over it pass.

The core's :class:`~protector_models.VerifiedStream` judges the deltas; these generators feed it and yield what
it releases, stop reading the model at the first flagged window, and call ``on_end`` with the outcome when the
stream ends (also when it raises, and with None when the consumer left before the end).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Generator, Iterator
from typing import Any

from llama_index_mllm_protector.guarding import verdict_metadata
from protector_models import StreamOutcome, VerifiedStream

PENDING: dict[str, Any] = {"checked": False, "pending": True}
"""The verdict metadata of a verified stream until it ends (the verdict replaces it, in the same dict)."""


def released(
    stream: VerifiedStream,
    deltas: Iterator[str],
    on_end: Callable[[StreamOutcome | None], None],
    *,
    close: Callable[[], None],
) -> Generator[str, None, None]:
    """The text ``stream`` releases from ``deltas``; ``close`` stops the model's stream once it is not read to
    its end; ``on_end`` gets the outcome."""
    finished = False
    try:
        for delta in deltas:
            text = stream.feed(delta)
            if text:
                yield text
            if stream.done:
                return
        text = stream.finish()
        finished = True
        if text:
            yield text
    finally:
        if not finished:
            close()
        on_end(stream.outcome)


async def areleased(
    stream: VerifiedStream,
    deltas: AsyncIterator[str],
    on_end: Callable[[StreamOutcome | None], Awaitable[None]],
    *,
    aclose: Callable[[], Awaitable[None]],
) -> AsyncGenerator[str, None]:
    """:func:`released` for an async stream (the detector runs in a worker thread)."""
    finished = False
    try:
        async for delta in deltas:
            text = await stream.afeed(delta)
            if text:
                yield text
            if stream.done:
                return
        text = await stream.afinish()
        finished = True
        if text:
            yield text
    finally:
        if not finished:
            await aclose()
        await on_end(stream.outcome)


def stream_verdict(outcome: StreamOutcome | None, **extra: Any) -> dict[str, Any]:
    """The verdict metadata of a verified stream, with what it released; an unfinished stream is unchecked."""
    if outcome is None:
        return {**PENDING, "pending": False, "error": "the stream was closed before its end", **extra}
    return verdict_metadata(outcome.result, stream=outcome.metadata(), **extra)
