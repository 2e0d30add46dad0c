"""Reading labelled (question, answer, harmful) data from JSON Lines, with line numbers in every error."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from protector_models.errors import InvalidInputError
from protector_models.pairs import Pair


@dataclass(frozen=True, slots=True)
class LabelledPair:
    """A pair with its human label: ``harmful`` is about the answer."""

    question: str
    answer: str
    harmful: bool
    source: str = ""
    category: str | None = None

    @property
    def pair(self) -> Pair:
        """The unlabelled (question, answer) pair."""
        return Pair(self.question, self.answer)


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line_number, record)`` for each non-blank line; a line that is not a JSON object is an error."""
    path = Path(path)
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if raw.strip():
                yield number, parse_json_line(raw, number, path.name)


def parse_json_line(raw: bytes, number: int, where: str = "input") -> dict[str, Any]:
    """One JSON object from one line of bytes, or an :class:`InvalidInputError` naming the line."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidInputError(
            f"{where} line {number}: not valid UTF-8 (byte 0x{raw[error.start]:02x} at column {error.start + 1}); "
            "re-encode the file as UTF-8"
        ) from None
    try:
        record = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidInputError(
            f"{where} line {number}: not valid JSON ({error.msg} at column {error.colno})"
        ) from None
    if not isinstance(record, dict):
        raise InvalidInputError(f"{where} line {number}: expected a JSON object, got {type(record).__name__}")
    return record


def read_labelled(path: str | Path) -> list[LabelledPair]:
    """Labelled pairs from our schema: ``question``, ``answer``, ``harmful``, optional ``source``/``category``."""
    pairs = []
    for number, record in iter_jsonl(path):
        where = f"{Path(path).name} line {number}"
        question, answer, harmful = record.get("question", ""), record.get("answer"), record.get("harmful")
        if not isinstance(answer, str) or not isinstance(question, str):
            raise InvalidInputError(f"{where}: `question` and `answer` must be text")
        if not isinstance(harmful, bool):
            raise InvalidInputError(f"{where}: `harmful` must be true or false, got {harmful!r}")
        category = record.get("category")
        pairs.append(
            LabelledPair(
                question,
                answer,
                harmful,
                source=str(record.get("source", "")),
                category=category if isinstance(category, str) else None,
            )
        )
    return pairs
