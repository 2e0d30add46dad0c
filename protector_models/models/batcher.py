"""Dynamic micro-batching: concurrent ``score`` calls on one detector gathered into shared detector passes.

A :class:`MicroBatcher` wraps any :class:`~protector_models.interfaces.Detector` and is one itself. Each call is
queued; a worker thread takes the oldest call, waits at most ``max_wait_ms`` (counted from that call's arrival)
for others to join until ``max_batch_size`` pairs are gathered, scores them all in one ``detector.score`` call
(``judge`` where the detector has it), and hands each caller its own scores or judgements, in its own order. A
call larger than ``max_batch_size`` goes alone. When a batch fails, every call in it (and no other) gets the error.
One worker by default; with ``workers`` > 1, several batches are scored at once (CPU cores each running a pass, or
a GPU pass overlapping the next batch's tokenisation).

The workers hold no reference to the batcher: a batcher that is garbage-collected, closed, or alive at
interpreter exit stops its workers after the calls already queued.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import Future, InvalidStateError
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Self

from protector_models.config.schema import BatchingConfig
from protector_models.errors import ModelRuntimeError
from protector_models.interfaces import Detector, Judgement, judge_with
from protector_models.pairs import Pair

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BatchStats:
    """What one detector call did: how many calls and pairs it served, how long it took, whether it failed."""

    calls: int
    pairs: int
    seconds: float
    failed: bool


BatchObserver = Callable[[BatchStats], None]


@dataclass(slots=True)
class _Call:
    pairs: Sequence[Pair]
    future: Future[list[Judgement]]
    arrived: float = field(default_factory=time.monotonic)


_STOP = object()
"""Queued by ``close``, once per worker: calls queued before it are still served, then the worker ends."""


class MicroBatcher:
    """A :class:`Detector` that gathers concurrent ``score`` calls into shared calls of ``detector``.

    Use it as a context manager or call :meth:`close`; a closed batcher refuses new calls with a
    :class:`ModelRuntimeError` (so a protector's ``on_error`` applies).
    """

    def __init__(self, detector: Detector, config: BatchingConfig | None = None) -> None:
        config = config or BatchingConfig()
        self.detector = detector
        self.config = config
        self._queue: queue.SimpleQueue[_Call | object] = queue.SimpleQueue()
        self._slots = threading.BoundedSemaphore(config.max_queue)  # the queue's bound (``close`` bypasses it)
        self._observers: list[BatchObserver] = []
        self._lock = threading.Lock()
        self._closed = False
        self._pid = os.getpid()
        self._workers = self._start_workers()
        self._finalizer = weakref.finalize(self, _stop_workers, self._queue, self._workers)

    def _start_workers(self) -> list[threading.Thread]:
        workers = [
            threading.Thread(
                target=_work,
                args=(self._queue, self._slots, self.detector, self.config, self._observers),
                name=f"mllm-protector-batcher-{id(self):x}-{number}",
                daemon=True,  # never blocks interpreter exit; the finalizer (run at exit too) stops it cleanly
            )
            for number in range(self.config.workers)
        ]
        for worker in workers:
            worker.start()
        return workers

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def add_observer(self, observer: BatchObserver) -> None:
        """Call ``observer(stats)`` after each detector call, on the worker thread (errors it raises are logged)."""
        self._observers.append(observer)

    def submit(self, pairs: Sequence[Pair], *, timeout: float | None = None) -> Future[list[float]]:
        """Queue ``pairs``; the future gives their scores. Waits up to ``timeout`` seconds (None: as long as it
        takes, 0: not at all) for room in the queue, then fails with :class:`ModelRuntimeError`."""
        return _scores_of(self.submit_judgements(pairs, timeout=timeout))

    def submit_judgements(self, pairs: Sequence[Pair], *, timeout: float | None = None) -> Future[list[Judgement]]:
        """:meth:`submit`, whose future gives judgements: scores with categories and who decided."""
        future: Future[list[Judgement]] = Future()
        if not pairs:
            future.set_result([])
            return future
        if timeout is None:
            acquired = self._slots.acquire()
        else:
            acquired = self._slots.acquire(timeout=timeout) if timeout > 0 else self._slots.acquire(blocking=False)
        if not acquired:
            raise ModelRuntimeError(
                f"the micro-batcher's queue is full ({self.config.max_queue} calls waiting); try again later"
            )
        with self._lock:
            if self._closed:
                self._slots.release()
                raise ModelRuntimeError("the micro-batcher is closed; it scores nothing more")
            if os.getpid() != self._pid:  # forked: the worker thread did not come along
                self._restart_after_fork()
            self._queue.put(_Call(pairs, future))
        return future

    def score(self, pairs: Sequence[Pair]) -> list[float]:
        """Scores for ``pairs``, computed in a batch shared with concurrent callers."""
        return [judgement.score for judgement in self.judge(pairs)]

    def judge(self, pairs: Sequence[Pair]) -> list[Judgement]:
        """Judgements (scores, categories, who decided) for ``pairs``, in a batch shared with concurrent callers."""
        return self.submit_judgements(pairs).result()

    async def ascore(self, pairs: Sequence[Pair]) -> list[float]:
        """:meth:`score` for asyncio: no thread waits; a full queue fails at once rather than block the loop."""
        return [judgement.score for judgement in await self.ajudge(pairs)]

    async def ajudge(self, pairs: Sequence[Pair]) -> list[Judgement]:
        """:meth:`judge` for asyncio, as :meth:`ascore`."""
        return await asyncio.wrap_future(self.submit_judgements(pairs, timeout=0))

    def close(self, timeout: float | None = 30.0) -> None:
        """Serve the calls already queued, then stop the worker (waiting up to ``timeout`` seconds for it)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._finalizer.detach()
        _stop_workers(self._queue, self._workers, timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _restart_after_fork(self) -> None:
        self._pid = os.getpid()
        self._queue = queue.SimpleQueue()
        self._slots = threading.BoundedSemaphore(self.config.max_queue)
        self._slots.acquire()  # the call being submitted holds one slot
        self._workers = self._start_workers()
        self._finalizer.detach()
        self._finalizer = weakref.finalize(self, _stop_workers, self._queue, self._workers)


def _scores_of(judged: Future[list[Judgement]]) -> Future[list[float]]:
    """A future of the scores of ``judged``'s judgements; cancelling it cancels ``judged`` (while still queued)."""
    scored: Future[list[float]] = Future()

    def settle(done: Future[list[Judgement]]) -> None:
        if done.cancelled():
            scored.cancel()
            return
        with suppress(InvalidStateError):  # the caller cancelled ``scored`` meanwhile
            if (error := done.exception()) is not None:
                scored.set_exception(error)
            else:
                scored.set_result([judgement.score for judgement in done.result()])

    def forward_cancel(outer: Future[list[float]]) -> None:
        if outer.cancelled():
            judged.cancel()

    scored.add_done_callback(forward_cancel)
    judged.add_done_callback(settle)
    return scored


def _stop_workers(
    calls: queue.SimpleQueue[_Call | object], workers: list[threading.Thread], timeout: float | None = 5.0
) -> None:
    for _ in workers:
        calls.put(_STOP)
    deadline = None if timeout is None else time.monotonic() + timeout
    for worker in workers:
        if worker is not threading.current_thread():
            worker.join(None if deadline is None else max(deadline - time.monotonic(), 0.0))


def _work(
    calls: queue.SimpleQueue[_Call | object],
    slots: threading.BoundedSemaphore,
    detector: Detector,
    config: BatchingConfig,
    observers: list[BatchObserver],
) -> None:
    """One worker: gather calls into batches and score them, until ``_STOP``."""
    max_wait = config.max_wait_ms / 1000
    held: _Call | None = None  # a call taken from the queue that did not fit into the previous batch
    while True:
        first = held if held is not None else _take(calls, slots, None)
        held = None
        if first is None:  # _STOP
            return
        batch, size, stop = [first], len(first.pairs), False
        deadline = first.arrived + max_wait
        while size < config.max_batch_size:
            try:
                item = _take(calls, slots, deadline - time.monotonic())
            except queue.Empty:
                break
            if item is None:  # _STOP: score what was taken, then end
                stop = True
                break
            if size + len(item.pairs) > config.max_batch_size:
                held = item
                break
            batch.append(item)
            size += len(item.pairs)
        _run(batch, detector, observers)
        if stop:
            return


def _take(
    calls: queue.SimpleQueue[_Call | object], slots: threading.BoundedSemaphore, wait: float | None
) -> _Call | None:
    """The next call (its queue slot freed), None for ``_STOP``; waits ``wait`` seconds (None: forever), then
    raises :class:`queue.Empty`."""
    item = calls.get() if wait is None else calls.get(timeout=wait) if wait > 0 else calls.get_nowait()
    if not isinstance(item, _Call):
        return None
    slots.release()
    return item


def _run(batch: list[_Call], detector: Detector, observers: list[BatchObserver]) -> None:
    """Score the calls of one batch together and settle each call's future."""
    live = [call for call in batch if call.future.set_running_or_notify_cancel()]  # skip cancelled callers
    if not live:
        return
    pairs = [pair for call in live for pair in call.pairs]
    started = time.perf_counter()
    failed = False
    try:
        judgements = judge_with(detector, pairs)
        if len(judgements) != len(pairs):
            raise ModelRuntimeError(f"detector returned {len(judgements)} scores for {len(pairs)} pairs")
    except BaseException as error:  # every caller of this batch gets the error; the worker carries on
        failed = True
        for call in live:
            call.future.set_exception(error)
    else:
        start = 0
        for call in live:
            call.future.set_result(list(judgements[start : start + len(call.pairs)]))
            start += len(call.pairs)
    stats = BatchStats(len(live), len(pairs), time.perf_counter() - started, failed)
    for observer in observers:
        try:
            observer(stats)
        except Exception:
            logger.exception("a micro-batch observer failed")
