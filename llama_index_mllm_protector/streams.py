"""Buffered streaming: the whole answer is checked before the first token goes out."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Generator

from protector_models import Result


def replay(deltas: list[str], result: Result) -> Generator[str, None, None]:
    """The original chunks when the answer passed unchanged, else the checked text in one chunk."""
    if result.changed:
        yield result.output
    else:
        yield from deltas


async def areplay(deltas: list[str], result: Result) -> AsyncGenerator[str, None]:
    """:func:`replay` as an async generator."""
    for delta in replay(deltas, result):
        yield delta


async def acollect(stream: AsyncIterator[str]) -> list[str]:
    """Every chunk of an async token stream."""
    return [delta async for delta in stream]
