"""Reading scan input (JSON Lines of question/answer records) and writing each record back with its verdict."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from protector_models.data.labelled import BOM, check_json_lines, missing_answer, parse_json_line
from protector_models.errors import InvalidInputError
from protector_models.pairs import Pair, text_problem

OUTPUT_FIELDS = ("harm_score", "flagged", "action", "output", "harm_categories", "decided_by")
"""Fields scan writes (the last two only from a guard LM or a cascade): an input record must not have them."""
_JSON_SPACE = " \t\r\n"


@dataclass(frozen=True, slots=True)
class ScanRecord:
    """One valid input record: its line number, its JSON text as read, and the pair to check."""

    line: int
    text: str
    pair: Pair


def parse_records(
    lines: Iterable[bytes], where: str, *, question_key: str = "question", answer_key: str = "answer"
) -> Iterator[ScanRecord | InvalidInputError]:
    """Each non-blank line as a :class:`ScanRecord`, or the error that explains why it is not one.

    Input that is not JSON Lines at all (a JSON array, a pretty-printed object) raises at once: no line of it
    is a record, so there is nothing to skip.
    """
    first = True
    for number, raw in enumerate(lines, start=1):
        if number == 1:
            raw = raw.removeprefix(BOM)
        if not raw.strip():
            continue
        if first:
            check_json_lines(raw, where)
            first = False
        try:
            yield _to_record(raw, number, where, question_key, answer_key)
        except InvalidInputError as error:
            yield error


def _to_record(raw: bytes, number: int, where: str, question_key: str, answer_key: str) -> ScanRecord:
    fields = parse_json_line(raw, number, where)
    if answer_key not in fields:
        raise missing_answer(f"{where} line {number}", fields, question_key, answer_key)
    question, answer = fields.get(question_key, ""), fields[answer_key]
    for name, value in ((question_key, question), (answer_key, answer)):
        if not isinstance(value, str):
            raise InvalidInputError(f"{where} line {number}: `{name}` must be a string, got {type(value).__name__}")
        problem = text_problem(value)
        if problem:
            raise InvalidInputError(
                f"{where} line {number}: `{name}` is not valid text: {problem} (a \\u escape of half a "
                "surrogate pair); fix the escape"
            )
    taken = [name for name in OUTPUT_FIELDS if name in fields]
    if taken:
        old = taken[0]
        new = "answer" if old == answer_key else "question" if old == question_key else f"original_{old}"
        name = "in.jsonl" if where == "stdin" else where
        raise InvalidInputError(
            f"{where} line {number}: already has field(s) {', '.join(taken)}, which scan writes; rename them so "
            f"nothing you gave is overwritten, e.g. jq -c '.{new} = .{old} | del(.{old})' {name} > renamed.jsonl"
        )
    return ScanRecord(number, raw.decode("utf-8").strip(_JSON_SPACE), Pair(question, answer))


def result_line(record: ScanRecord, added: dict[str, Any]) -> str:
    """The record's JSON text exactly as read, with ``added`` fields appended: nothing the user gave changes."""
    body = record.text[:-1].rstrip(_JSON_SPACE)  # the object without its closing brace; it has an answer
    fields = json.dumps(added, ensure_ascii=False)
    if text_problem(fields):  # a lone surrogate in a rewrite or refusal: escape it rather than fail to write
        fields = json.dumps(added)
    return f"{body}, {fields[1:]}\n"
