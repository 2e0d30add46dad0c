"""Graceful shutdown: once the server stops taking connections, the requests in flight get ``graceful_shutdown_s``
to finish; any still running then is answered 503 (one log line says how many), never cut off with a 500.

uvicorn stops accepting and waits for in-flight requests (``timeout_graceful_shutdown``), but past its timeout it
cancels them, which ends each in a 500 and a ``CancelledError`` traceback. :class:`GracefulServer` starts the app's
:class:`Drain` as uvicorn's shutdown begins, and gives uvicorn's own timeout a margin beyond the drain's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

import uvicorn

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

CANCEL_MARGIN_S = 5.0
"""How long after the drain's deadline uvicorn may cancel what is still running (a request still sending its body)."""


class ShuttingDownError(Exception):
    """A request that the service, shutting down, did not finish within its grace period."""


class Drain:
    """The requests in flight, answered within ``grace_s`` of the start of shutdown: finished, or refused."""

    def __init__(self, grace_s: float) -> None:
        self.grace_s = grace_s
        self.begun = False
        self._expired = False
        self._running: set[asyncio.Task[Any]] = set()

    @property
    def in_flight(self) -> int:
        """Requests whose work is running now."""
        return len(self._running)

    def begin(self) -> None:
        """Start the grace period (in the event loop); what still runs at its end is cancelled and refused."""
        if not self.begun:
            self.begun = True
            asyncio.get_running_loop().call_later(self.grace_s, self._expire)

    async def run(self, work: Coroutine[Any, Any, _T]) -> _T:
        """``work``'s result, or :class:`ShuttingDownError` if it is still running when the grace period ends."""
        if self._expired:
            work.close()
            raise self._refusal()
        task = asyncio.ensure_future(work)
        self._running.add(task)
        try:
            return await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if self._expired and task.cancelled() and current is not None and not current.cancelling():
                raise self._refusal() from None  # cancelled by the drain, not the request itself
            raise
        finally:
            self._running.discard(task)
            task.cancel()  # when the request itself was cancelled: its work goes too

    def _expire(self) -> None:
        self._expired = True
        if self._running:
            logger.warning(
                "shutting down: %d request(s) still running after graceful_shutdown_s (%g s) answered 503",
                len(self._running),
                self.grace_s,
            )
        for task in list(self._running):
            task.cancel()

    def _refusal(self) -> ShuttingDownError:
        return ShuttingDownError(
            f"the service is shutting down and did not finish this request within its grace period "
            f"(graceful_shutdown_s: {self.grace_s:g} s); none of its pairs was checked: send it again"
        )


class GracefulServer(uvicorn.Server):
    """uvicorn's server, draining ``drain`` as shutdown begins (on SIGTERM or SIGINT)."""

    def __init__(self, config: uvicorn.Config, drain: Drain) -> None:
        config.timeout_graceful_shutdown = drain.grace_s + CANCEL_MARGIN_S  # type: ignore[assignment]
        super().__init__(config)
        self.drain = drain

    async def shutdown(self, sockets: Any = None) -> None:
        self.drain.begin()
        await super().shutdown(sockets)
