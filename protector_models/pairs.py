"""The unit everything works on: a (question, answer) pair, validated once at the edge."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from protector_models.errors import InvalidInputError


@dataclass(frozen=True, slots=True)
class Pair:
    """A user's question and the model's answer to it. ``question`` may be empty."""

    question: str
    answer: str


PairLike = Pair | tuple[str, str]

LIST_HINT = "pass a list of pairs, e.g. [(question, answer)]"


def as_pairs(items: Iterable[PairLike]) -> list[Pair]:
    """Validate ``Pair`` objects or ``(question, answer)`` tuples; the error names the position and field."""
    _check_container(items)
    pairs = []
    for index, item in enumerate(items):
        if isinstance(item, Pair):
            question, answer = item.question, item.answer
        elif isinstance(item, (tuple, list)) and len(item) == 2:
            question, answer = item
        else:
            raise InvalidInputError(
                f"pair {index}: expected Pair(question, answer) or a (question, answer) tuple, got {_kind(item)}"
            )
        for field, value in (("question", question), ("answer", answer)):
            if not isinstance(value, str):
                raise InvalidInputError(f"pair {index}: {field} must be text (str), got {_kind(value)}")
            problem = text_problem(value)
            if problem:
                raise InvalidInputError(
                    f"pair {index}: {field} is not valid text: {problem}; repair it first, "
                    "e.g. text.encode('utf-8', 'replace').decode('utf-8')"
                )
        pairs.append(item if isinstance(item, Pair) else Pair(question, answer))
    return pairs


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be encoded as UTF-8 (a lone surrogate, as a bad decode leaves), or None when it can."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        return f"it holds a lone surrogate {text[error.start]!r} at character {error.start}, which is not Unicode text"
    return None


def _check_container(items: object) -> None:
    """Name the usual mistakes: one pair, one string, a dict or nothing instead of a list of pairs."""
    if isinstance(items, Pair):
        problem = "a single Pair"
    elif isinstance(items, (str, bytes)):
        problem = f"a single value ({_kind(items)})"
    elif isinstance(items, Mapping):
        problem = f"a mapping ({_kind(items)})"
    elif isinstance(items, (tuple, list)) and items and all(isinstance(item, str) for item in items):
        problem = f"one {type(items).__name__} of {len(items)} strings ({_kind(items)}), not a list of pairs"
    elif not isinstance(items, Iterable):
        problem = _kind(items)
    else:
        return
    raise InvalidInputError(f"expected a list of (question, answer) pairs, got {problem}; {LIST_HINT}")


def _kind(value: object) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:60]}{'...' if len(text) > 60 else ''}"
