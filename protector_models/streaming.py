"""Verified release: a streamed answer is shown as the detector's windows over it pass, and stopped at the first
flagged one.

A :class:`VerifiedStream` (from :meth:`Protector.stream <protector_models.Protector.stream>`) is fed the model's
text as it arrives. Each window of the answer is scored as soon as its tokens are final (windows ready together
in one detector call); text is released once the windows over it cut so far have passed, the short first window
getting the first text out early. The first flagged window that ``check`` reads ends the stream: what follows the
released text is the action's text (a refusal, or a rewrite of the answer so far), or :class:`HarmfulContentError`
is raised. The short first window only ever holds text back: when it is flagged, its text waits for the full
window over it, which decides (a few dozen tokens lack the context the rest of the answer gives; stopping on them
stopped 3.9% of dev's benign answers that ``check`` passes).
When the model finishes, the windows ``check`` reads for the whole answer are scored (those not scored already),
so an answer that streams to its end has ``check``'s verdict. Text already released cannot be taken back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from protector_models.errors import HarmfulContentError, InvalidInputError
from protector_models.models.window_stream import StreamWindow, WindowStream
from protector_models.models.windows import Window
from protector_models.pairs import Pair, text_problem
from protector_models.results import Result, Verdict


@dataclass(frozen=True)
class StreamOutcome:
    """How a verified stream ended."""

    result: Result
    """The verdict and the action, as ``protect`` gives them for the answer (so far, when stopped): ``original``
    is the model's text, ``output`` what replaced it (equal to it when nothing was replaced)."""
    shown: str
    """Everything the stream released: the answer's text as it passed, then any replacement."""
    released: int
    """Characters of the answer released before the end or the stop (they cannot be taken back)."""
    stopped: bool
    """Whether the stream was ended before the model finished (a flagged window, or a model failure under
    ``on_error: block``)."""
    windows: int
    """Windows scored."""
    early_windows: int
    """Of those, windows ``check`` does not read (the short first window, or any cut before the whole answer was
    known that differs from ``check``'s)."""

    def metadata(self) -> dict[str, object]:
        """The JSON-ready record of the stream, for verdict metadata (it holds no text)."""
        return {
            "release": "verified",
            "released_chars": self.released,
            "stopped": self.stopped,
            "windows": self.windows,
            "early_windows": self.early_windows,
        }


Scorer = Callable[[Sequence[Window]], list[float]]
"""Scores windows; a failure raises."""
Failure = Callable[[Exception], Verdict]
"""The verdict when scoring failed (``on_error`` block or pass), or raises the error (``on_error: raise``)."""
Actor = Callable[[Pair, Verdict], Result]
"""What ``protect`` does with a scored pair: the result, or :class:`HarmfulContentError` (``action: raise``)."""


class VerifiedStream:
    """One streamed answer, judged window by window as it arrives. Not thread-safe: one stream, one consumer.

    ``feed(text)`` returns the text that may be shown now (possibly empty); once :attr:`done`, the caller closes
    the model's stream. ``finish()`` (the model has finished) returns the rest. After either ends the stream,
    :attr:`outcome` says how. ``afeed`` / ``afinish`` score in a worker thread.
    """

    def __init__(
        self,
        windows: WindowStream,
        *,
        threshold: float,
        stop_on_flag: bool,
        score: Scorer,
        failed: Failure,
        act: Actor,
    ) -> None:
        self.threshold = threshold
        self._windows = windows
        self._stop_on_flag = stop_on_flag
        self._score, self._failed, self._act = score, failed, act
        self._scores: dict[tuple[int, ...], float] = {}
        self._early: set[tuple[int, ...]] = set()  # keys of windows cut that check may not read
        self._released = 0
        self._shown: list[str] = []
        self._unchecked: Verdict | None = None  # a model failure under on_error: pass; the rest passes unchecked
        self._detect_s = 0.0
        self._ended = False
        self.outcome: StreamOutcome | None = None

    @property
    def done(self) -> bool:
        """Whether the stream has ended (finished, or stopped: close the model's stream)."""
        return self._ended

    @property
    def text(self) -> str:
        """The model's text received so far."""
        return self._windows.text

    @property
    def shown(self) -> str:
        """Everything released so far (what a user has seen)."""
        return "".join(self._shown)

    def feed(self, text: str) -> str:
        """Take the model's next piece of text; the text released by it (a replacement when it stopped the
        stream)."""
        windows = self._take(text)
        return self._judge(windows) if windows else self._pass_unchecked()

    async def afeed(self, text: str) -> str:
        """:meth:`feed`, scoring in a worker thread."""
        windows = self._take(text)
        return await asyncio.to_thread(self._judge, windows) if windows else self._pass_unchecked()

    def finish(self, hidden: str = "") -> str:
        """The model has finished: score ``check``'s windows for the whole answer; the rest of the text, or the
        replacement. ``hidden`` is judged with the answer but never released (e.g. tool calls written as text)."""
        self._ensure_open()
        if hidden:
            self._accept(hidden)
        visible = len(self.text)
        windows = self._windows.finish(hidden)
        if self._unchecked is not None:
            return self._end(self._unchecked, visible)
        if not self.text.strip():  # says nothing: passes unscored, as in check
            return self._end(Verdict(0.0, False), visible)
        released = self._judge(windows, visible)
        if self._ended:
            return released
        score = max(self._scores[window.key] for window in windows)
        self._early = self._scores.keys() - {window.key for window in windows}
        return released + self._end(Verdict(score, score >= self.threshold), visible)

    async def afinish(self, hidden: str = "") -> str:
        """:meth:`finish`, scoring in a worker thread."""
        return await asyncio.to_thread(self.finish, hidden)

    def _take(self, text: str) -> list[StreamWindow]:
        """Accept the next text; the windows it completed (none once the rest passes unchecked)."""
        self._ensure_open()
        self._accept(text)
        if self._unchecked is not None:
            self._windows.text += text
            return []
        return self._windows.feed(text)

    def _pass_unchecked(self) -> str:
        return self._release(len(self.text)) if self._unchecked is not None else ""

    def _judge(self, windows: list[StreamWindow], visible: int | None = None) -> str:
        """Score the windows not scored yet (one call); release the text the passed ones vouch for, or stop."""
        fresh = {window.key: window for window in windows if window.key not in self._scores}
        self._early |= {window.key for window in windows if not window.checks}
        if fresh:
            started = time.perf_counter()
            try:
                scores = self._score([window.window for window in fresh.values()])
            except Exception as error:
                self._ended = True  # unless on_error lets the stream go on
                verdict = self._failed(error)
                self._ended = False
                return self._failure(verdict)
            finally:
                self._detect_s += time.perf_counter() - started
            self._scores.update(zip(fresh, scores, strict=True))
        scores = [self._scores[window.key] for window in windows]
        decisive = [score for window, score in zip(windows, scores, strict=True) if window.checks]
        if self._stop_on_flag and any(score >= self.threshold for score in decisive):
            # nothing of this batch is released: a flagged window may cover text an earlier one vouches for
            verdict = Verdict(max(decisive), True)
            if visible is None:
                return self._stop(verdict)
            return self._end(verdict, self._released)  # the whole answer: check's score
        # a flagged short first window stops nothing (check does not read it): its text waits for a full window
        passed = [
            window.text_end
            for window, score in zip(windows, scores, strict=True)
            if score < self.threshold or not self._stop_on_flag
        ]
        end = max([self._released, *passed])
        return self._release(min(end, len(self.text) if visible is None else visible))

    def _failure(self, verdict: Verdict) -> str:
        """A model failure that ``on_error`` does not raise: block stops the stream, pass lets the rest through."""
        if verdict.flagged:
            return self._stop(verdict)
        self._unchecked = verdict
        return self._release(len(self.text))

    def _stop(self, verdict: Verdict) -> str:
        """End the stream before the model has finished: the replacement to show after the released text."""
        return self._end(verdict, self._released, stopped=True)

    def _end(self, verdict: Verdict, visible: int, *, stopped: bool = False) -> str:
        """Act on the verdict for the answer so far; the text to release last."""
        self._ended = True
        pair = Pair(self._windows.question, self.text)
        try:
            result = self._act(pair, verdict)
        except HarmfulContentError as error:
            self._record(error.results[0], stopped)
            raise
        if not result.changed:
            last = self._release(visible)
        else:
            last = separator(self.shown) + result.output
            self._shown.append(last)
        self._record(result, stopped)
        return last

    def _record(self, result: Result, stopped: bool) -> None:
        self.outcome = StreamOutcome(
            result=replace(result, detect_ms=self._detect_s * 1000),
            shown=self.shown,
            released=self._released,
            stopped=stopped,
            windows=len(self._scores),
            early_windows=len(self._early & self._scores.keys()),
        )

    def _release(self, end: int) -> str:
        if end <= self._released:
            return ""
        text = self.text[self._released : end]
        self._released = end
        self._shown.append(text)
        return text

    def _ensure_open(self) -> None:
        if self._ended:
            raise RuntimeError("this stream has ended; close the model's stream (see VerifiedStream.done)")

    @staticmethod
    def _accept(text: object) -> None:
        if not isinstance(text, str):
            raise InvalidInputError(f"a streamed answer is text: each piece must be a str, got {type(text).__name__}")
        problem = text_problem(text)
        if problem:
            raise InvalidInputError(f"a streamed piece of the answer is not valid text: {problem}; repair it first")


def separator(shown: str) -> str:
    """What goes between released text and its replacement: a paragraph break, unless the text ends with one."""
    if not shown:
        return ""
    return "\n" * max(0, 2 - (len(shown) - len(shown.rstrip("\n"))))
