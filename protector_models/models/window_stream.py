"""A streamed answer cut into the detector's windows as its text arrives.

``check`` reads an answer in the windows of :class:`~protector_models.models.windows.PairEncoder`. A stream is
cut into the very same windows: a window is cut as soon as all its tokens have arrived and can no longer change
(text that is still arriving may merge with the last word), plus one short first window over the first tokens
so that the first text can be shown early. When the stream ends, :meth:`WindowStream.finish` gives ``check``'s
windows for the whole answer, cut by ``check``'s own code, so the last judgement is ``check``'s.

Tokens are mapped back to text by the offsets of a fast tokenizer: each window says up to which character the
text it vouches for goes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from protector_models.models.windows import PairEncoder, Window
from protector_models.pairs import Pair

_WORD_BREAK = re.compile(r"\s+(?=\S)")
"""Whitespace before a word: no tokenizer we read puts a token across the start of such a run."""
UNBROKEN_CHARS = 256
"""Text this long with no whitespace in it (code, URLs, scripts without spaces) is cut a few tokens before its end."""
UNBROKEN_KEEP_TOKENS = 8
"""Tokens left pending at the end of unbroken text: what may still merge with the text to come."""


@runtime_checkable
class WindowScorer(Protocol):
    """A detector that cuts answers with ``encoder`` and scores single windows (``ClassifierDetector`` does)."""

    encoder: PairEncoder

    def score_windows(self, windows: Sequence[Window]) -> list[float]:
        """P(harmful) of each window, in order."""
        ...


@dataclass(frozen=True)
class StreamWindow:
    """A window of a streamed answer, and the text it vouches for once it has passed."""

    window: Window
    text_end: int
    """The answer's characters ``[0, text_end)`` may be shown once this window (and every one before it) passed."""
    checks: bool
    """Whether ``check`` reads this window for the whole answer as far as the stream knows (False: the short first
    window)."""

    @property
    def key(self) -> tuple[int, ...]:
        """What the model reads: equal keys score equal."""
        return tuple(self.window.input_ids)


class WindowStream:
    """Feeds on an answer's text as it arrives and cuts it into the detector's windows.

    ``feed`` returns the windows that became complete: full windows of ``encoder.answer_tokens`` tokens every
    ``encoder.stride`` tokens (``check``'s, for any answer at least that long), and once a short first window of
    ``first_window_tokens`` tokens, read as an answer of that length would be. ``finish`` returns every window
    ``check`` reads for the whole answer. Holds the answer's text and its tokens.
    """

    def __init__(self, encoder: PairEncoder, question: str, first_window_tokens: int = 64) -> None:
        if not encoder.tokenizer.is_fast:
            raise ValueError("streaming needs a fast tokenizer (its offsets map tokens back to text)")
        self.encoder = encoder
        self.question = question
        self._question_ids = encoder.question_ids(question)
        self._first = first_window_tokens if 0 < first_window_tokens < encoder.answer_tokens else 0
        self.text = ""
        self._ids: list[int] = []
        self._starts: list[int] = []
        self._ends: list[int] = []
        self._committed = 0  # characters whose tokens are final; the next token starts at or after it
        self._anchor = 0  # where the last tokenisation started: a word break before `_committed` (context)
        self._next_start = 0  # the answer token at which the next full window starts
        self._first_cut = not self._first

    @property
    def tokens(self) -> int:
        """Answer tokens that can no longer change."""
        return len(self._ids)

    def feed(self, text: str) -> list[StreamWindow]:
        """Add ``text`` to the answer; the windows it completed, in order."""
        self.text += text
        self._commit()
        return self._windows()

    def finish(self, tail: str = "") -> list[StreamWindow]:
        """The answer is complete (with ``tail`` added): every window ``check`` reads for it (cut by ``check``'s own
        code), vouching for the whole text."""
        self.text += tail
        windows = self.encoder.windows([Pair(self.question, self.text)])
        return [StreamWindow(window, len(self.text), checks=True) for window in windows]

    def _commit(self) -> None:
        """Make final the tokens before the last word break (or, in long unbroken text, all but the last few)."""
        pending = self.text[self._committed :]
        breaks = [match.start() for match in _WORD_BREAK.finditer(pending)]
        cut = self._committed + breaks[-1] if breaks and breaks[-1] > 0 else self._committed
        if cut == self._committed and len(pending) < UNBROKEN_CHARS:
            return
        lead = self.encoder.answer_lead if self._anchor == 0 else ""
        shift = self._anchor - len(lead)
        encoded = self.encoder.tokenizer(
            lead + self.text[self._anchor :], add_special_tokens=False, return_offsets_mapping=True, verbose=False
        )
        spans = [(max(0, start + shift), end + shift) for start, end in encoded["offset_mapping"]]
        fresh = [i for i, (start, _) in enumerate(spans) if start >= self._committed]
        if cut == self._committed:  # unbroken text: keep the last few tokens pending
            fresh = fresh[:-UNBROKEN_KEEP_TOKENS]
            cut = spans[fresh[-1]][1] if fresh else cut
        final = [i for i in fresh if spans[i][1] <= cut]
        if not final:
            return
        self._ids += [encoded["input_ids"][i] for i in final]
        self._starts += [spans[i][0] for i in final]
        self._ends += [spans[i][1] for i in final]
        self._anchor, self._committed = self._committed, cut

    def _windows(self) -> list[StreamWindow]:
        """The windows whose tokens are all final and followed by at least one final token (so that where their
        text ends is known)."""
        size, stride, count = self.encoder.answer_tokens, self.encoder.stride, len(self._ids)
        windows = []
        if not self._first_cut and count > self._first:
            first = self.encoder.window(self._question_ids, self._ids[: self._first], whole=True)
            windows.append(StreamWindow(first, self._text_end(self._first), checks=False))
            self._first_cut = True
        while count > self._next_start + size:
            start = self._next_start
            window = self.encoder.window(self._question_ids, self._ids[start : start + size], whole=False)
            # the text only this window and those before it read: the rest waits for the next window too
            windows.append(StreamWindow(window, self._text_end(start + stride), checks=True))
            self._next_start += stride
        return windows

    def _text_end(self, token: int) -> int:
        """Where the text of the answer's first ``token`` tokens ends: no character of a later token before it."""
        return min(self._ends[token - 1], self._starts[token])
