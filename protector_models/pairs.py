"""The unit everything works on: a (question, answer) pair, validated once at the edge."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from protector_models.errors import InvalidInputError


@dataclass(frozen=True, slots=True)
class Pair:
    """A user's question and the model's answer to it. ``question`` may be empty."""

    question: str
    answer: str


PairLike = Pair | tuple[str, str]


def as_pairs(items: Iterable[PairLike]) -> list[Pair]:
    """Validate ``Pair`` objects or ``(question, answer)`` tuples; the error names the position and field."""
    if isinstance(items, (str, bytes, Pair)):
        raise InvalidInputError("expected a list of (question, answer) pairs, got a single value; wrap it in a list")
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
        pairs.append(item if isinstance(item, Pair) else Pair(question, answer))
    return pairs


def _kind(value: object) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:60]}{'...' if len(text) > 60 else ''}"
