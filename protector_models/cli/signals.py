"""Signals during a command: SIGTERM and SIGHUP unwind like Ctrl-C (so temporary files are removed), and a copy
that must not be cut mid-record can hold them off until a record ends.

Handlers are set only in the main thread (the only one Python lets set them); elsewhere both helpers do nothing.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType

_STOPPING = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))  # Windows: no HUP
_ALL = (signal.SIGINT, *_STOPPING)


class TerminatedError(BaseException):
    """SIGTERM or SIGHUP arrived: unwind (``finally`` blocks run), then exit with ``128 + signal``.

    A ``BaseException``, like ``KeyboardInterrupt``: no ``except Exception`` swallows it.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(f"terminated by {signal.Signals(signum).name}")
        self.signum = signum


def interrupted(signum: int) -> BaseException:
    """The exception a signal stands for: ``KeyboardInterrupt`` for SIGINT, else :class:`TerminatedError`."""
    return KeyboardInterrupt() if signum == signal.SIGINT else TerminatedError(signum)


def signum_of(error: KeyboardInterrupt | TerminatedError) -> int:
    """The signal an interrupt stands for (the shell's exit code for it is 128 + that number)."""
    return error.signum if isinstance(error, TerminatedError) else signal.SIGINT


def _raise(signum: int, _: FrameType | None) -> None:
    raise interrupted(signum)


@contextmanager
def terminating_unwinds() -> Iterator[None]:
    """SIGTERM and SIGHUP raise :class:`TerminatedError` inside the block instead of killing the process at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, _raise) for signum in _STOPPING}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@dataclass
class Deferred:
    """The first signal held off in a :func:`deferred_signals` block, if any."""

    signum: int | None = None


@contextmanager
def deferred_signals() -> Iterator[Deferred]:
    """Inside the block, Ctrl-C, SIGTERM and SIGHUP are recorded, not raised: the block checks ``signum`` where
    stopping is safe. A second signal raises at once (someone means it)."""
    held = Deferred()
    if threading.current_thread() is not threading.main_thread():
        yield held
        return

    def hold(signum: int, _: FrameType | None) -> None:
        if held.signum is not None:
            raise interrupted(signum)
        held.signum = signum

    previous = {signum: signal.signal(signum, hold) for signum in _ALL}
    try:
        yield held
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
