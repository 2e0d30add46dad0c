"""Long answers as overlapping windows: how a pair becomes model inputs, for training and inference alike.

Every answer is read whole. An answer that fits in one input is one window; a longer one is cut into windows of
``answer_tokens`` tokens that start every ``stride`` tokens (the last one ends at the answer's end), each with
the question in front: all of it when it fits, else its start and its end (see :func:`question_ends`). A
detector's score for the pair is the maximum over its windows, so a harmful passage anywhere is seen. Text is
tokenised in bounded pieces, so memory does not grow with the answer's size.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

from protector_models.models.templates import PAPER_QUESTION_PREFIX, PAPER_QUESTION_SUFFIX, DetectorTemplate
from protector_models.pairs import Pair

CHUNK_CHARS = 16_384
"""Text longer than this is tokenised in pieces of about this many characters (cut at whitespace)."""
QUESTION_HEAD_SHARE = 4
"""A question cut to fit keeps its first 1/4 of the room (and its end in the rest)."""


@dataclass(frozen=True)
class WindowSpec:
    """How long inputs are and how a long answer is cut.

    ``max_length`` bounds every input (special tokens and question included); an answer longer than
    ``answer_tokens`` becomes windows of that many tokens, one every ``stride`` tokens, so consecutive windows
    share ``answer_tokens - stride`` tokens and a passage that short is always seen whole.
    """

    max_length: int = 512
    answer_tokens: int = 384
    stride: int = 256

    def __post_init__(self) -> None:
        if not 0 < self.stride <= self.answer_tokens:
            raise ValueError(f"window stride must be in [1, answer_tokens={self.answer_tokens}], got {self.stride}")


@dataclass(frozen=True)
class Window:
    """One model input: the pair it belongs to and its token features."""

    owner: int
    input_ids: list[int]
    token_type_ids: list[int]


class PairEncoder:
    """Turns (question, answer) pairs into windows with a detector template, in bounded memory."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, template: DetectorTemplate, spec: WindowSpec) -> None:
        self.tokenizer = tokenizer
        self.template = template
        self.uses_token_types = "token_type_ids" in tokenizer.model_input_names
        self._layout = _probe_layout(tokenizer, template)
        overhead = self._layout.overhead
        if spec.max_length - overhead < 2:
            raise ValueError(f"max_length {spec.max_length} leaves no room for text after {overhead} template tokens")
        self.content_budget = spec.max_length - overhead
        self.answer_tokens = min(spec.answer_tokens, self.content_budget - 1)
        self.stride = min(spec.stride, self.answer_tokens)

    def windows(self, pairs: Sequence[Pair]) -> Iterator[Window]:
        """Every window of every pair, pair by pair; ``owner`` is the pair's index in ``pairs``."""
        for start in range(0, len(pairs), 64):
            group = pairs[start : start + 64]
            short = [i for i, pair in enumerate(group) if len(pair.answer) <= CHUNK_CHARS]
            lead = self._layout.answer_lead
            ids = self._ids([_ends(pair.question) for pair in group] + [lead + group[i].answer for i in short])
            question_ids = ids[: len(group)]  # one tokenizer call for both: it costs more than it tokenises
            answer_ids = dict(zip(short, ids[len(group) :], strict=True))
            for offset, pair in enumerate(group):
                if offset in answer_ids:
                    chunks: Iterable[list[int]] = [answer_ids[offset]]
                    single = len(answer_ids[offset]) <= self.answer_tokens
                else:
                    chunks, single = (self._ids([piece])[0] for piece in _pieces(lead + pair.answer)), False
                yield from self._pair_windows(start + offset, question_ids[offset], chunks, single)

    def encode(self, pairs: Sequence[Pair]) -> tuple[dict[str, list[list[int]]], list[int]]:
        """All windows at once: features (one row per window) and each window's pair index. For training sets."""
        features: dict[str, list[list[int]]] = {"input_ids": [], "attention_mask": []}
        if self.uses_token_types:
            features["token_type_ids"] = []
        owners = []
        for window in self.windows(pairs):
            owners.append(window.owner)
            features["input_ids"].append(window.input_ids)
            features["attention_mask"].append([1] * len(window.input_ids))
            if self.uses_token_types:
                features["token_type_ids"].append(window.token_type_ids)
        return features, owners

    @property
    def answer_lead(self) -> str:
        """Text put before the answer when it is tokenised (so it tokenises as after the template's last word)."""
        return self._layout.answer_lead

    def question_ids(self, question: str) -> list[int]:
        """The question's tokens, as far as any window can hold them (see :func:`question_ends`)."""
        return self._ids([_ends(question)])[0]

    def window(self, question: list[int], answer: list[int], *, whole: bool, owner: int = 0) -> Window:
        """One input: ``answer`` (tokens) with the question (:meth:`question_ids`) in front. ``whole``: the answer
        is all of a short answer, and the question fills the room it leaves; else a window of a long answer."""
        room = self.content_budget - (len(answer) if whole else self.answer_tokens)
        return self._window(owner, question_ends(question, room), answer)

    def _pair_windows(
        self, owner: int, question: list[int], chunks: Iterable[list[int]], single: bool
    ) -> Iterator[Window]:
        if single:  # the whole answer fits: the question fills what is left
            yield self.window(question, next(iter(chunks)), whole=True, owner=owner)
            return
        for answer in slide(chunks, self.answer_tokens, self.stride):
            yield self.window(question, answer, whole=False, owner=owner)

    def _window(self, owner: int, question: list[int], answer: list[int]) -> Window:
        layout = self._layout
        ids = [*layout.before, *layout.question_prefix, *question, *layout.between, *answer, *layout.after]
        types = (
            [layout.type_first]
            * (len(layout.before) + len(layout.question_prefix) + len(question) + len(layout.between))
            + [layout.type_second] * (len(answer) + len(layout.after))
            if self.uses_token_types
            else []
        )
        return Window(owner, ids, types)

    def _ids(self, texts: list[str]) -> list[list[int]]:
        if not texts:
            return []
        return list(self.tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"])


def slide(chunks: Iterable[list[int]], size: int, stride: int) -> Iterator[list[int]]:
    """Windows of ``size`` tokens every ``stride`` tokens over a token stream given in chunks; the last window
    ends at the stream's end, and a stream no longer than ``size`` is one window. Holds at most about
    ``size`` tokens plus one chunk."""
    buffer: list[int] = []
    start, emitted = 0, False
    for chunk in chunks:
        buffer.extend(chunk)
        while len(buffer) - start >= size:
            yield buffer[start : start + size]
            emitted, start = True, start + stride
        keep_from = min(start, max(0, len(buffer) - size))  # the last `size` tokens and all not yet windowed
        del buffer[:keep_from]
        start -= keep_from
    if not emitted:
        yield buffer
    elif len(buffer) > start - stride + size:  # tokens after the last window's end
        yield buffer[-size:]


def _pieces(text: str) -> Iterator[str]:
    """``text`` in pieces of about :data:`CHUNK_CHARS` characters, each ending before whitespace when it can."""
    start = 0
    while start < len(text):
        end = min(start + CHUNK_CHARS, len(text))
        if end < len(text):
            space = max(text.rfind(" ", start + CHUNK_CHARS // 2, end), text.rfind("\n", start + CHUNK_CHARS // 2, end))
            end = space if space > start else end
        yield text[start:end]
        start = end


def question_ends(question: list[int], room: int) -> list[int]:
    """The question's tokens when they fit in ``room``; else its start (a quarter of the room) and its end (the
    rest), so that neither filler appended after the real question nor a long preamble before it pushes the
    question out of the input, and the end, which the answer replies to, keeps most of the room."""
    if len(question) <= room:
        return question
    head = room // QUESTION_HEAD_SHARE
    return question[:head] + question[len(question) - (room - head) :]


def _ends(question: str) -> str:
    """The question's start and end: no window holds more of it than fits in one input, so longer text is not
    tokenised (a quarter of :data:`CHUNK_CHARS` from its start is far more than a window keeps)."""
    if len(question) <= CHUNK_CHARS:
        return question
    head = question.rfind(" ", 0, CHUNK_CHARS // QUESTION_HEAD_SHARE)
    head = head if head > 0 else CHUNK_CHARS // QUESTION_HEAD_SHARE
    cut = question.find(" ", len(question) - CHUNK_CHARS)
    return question[:head] + " " + question[cut + 1 if cut >= 0 else len(question) - CHUNK_CHARS :]


@dataclass(frozen=True)
class _Layout:
    """Where a template puts its fixed tokens around the question and the answer."""

    before: list[int]
    question_prefix: list[int]
    between: list[int]
    after: list[int]
    type_first: int
    type_second: int
    answer_lead: str = ""
    """Text put before the answer so that it tokenises as it would after the template's last word."""

    @property
    def overhead(self) -> int:
        return len(self.before) + len(self.question_prefix) + len(self.between) + len(self.after)


def _probe_layout(tokenizer: PreTrainedTokenizerBase, template: DetectorTemplate) -> _Layout:
    """Read the special tokens (and token types) a tokenizer puts around one text or a text pair."""
    if template == "text_pair":
        first, second = _probe(tokenizer, ("a", "b"))
        return _Layout(first.before, [], second.before, second.after, first.type, second.type)
    (single,) = _probe(tokenizer, ("a",))
    prefix, suffix, bare, spaced, joined = tokenizer(
        [PAPER_QUESTION_PREFIX, PAPER_QUESTION_SUFFIX, "a", " a", PAPER_QUESTION_SUFFIX + " a"],
        add_special_tokens=False,
    )["input_ids"]
    lead = " " if [*suffix, *spaced] == joined and [*suffix, *bare] != joined else ""
    return _Layout(single.before, list(prefix), list(suffix), single.after, single.type, single.type, lead)


@dataclass(frozen=True)
class _Segment:
    before: list[int]
    after: list[int]
    type: int


def _probe(tokenizer: PreTrainedTokenizerBase, texts: tuple[str, ...]) -> list[_Segment]:
    """For one text or a pair: the tokens the tokenizer adds before each text and after it, and its token type."""
    encoded = tokenizer(*texts)
    ids = list(encoded["input_ids"])
    types = list(encoded.get("token_type_ids") or [0] * len(ids))
    segments, cursor = [], 0
    for text in texts:
        content = tokenizer(text, add_special_tokens=False)["input_ids"]
        at = _find(ids, content, cursor)
        segments.append(_Segment(ids[cursor:at], [], types[at]))
        cursor = at + len(content)
    segments[-1] = _Segment(segments[-1].before, ids[cursor:], segments[-1].type)
    return segments


def _find(haystack: Sequence[int], needle: Sequence[int], start: int) -> int:
    for at in range(start, len(haystack) - len(needle) + 1):
        if list(haystack[at : at + len(needle)]) == list(needle):
            return at
    raise ValueError("cannot find where this tokenizer puts the text in a template; use template: paper")
