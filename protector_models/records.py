"""Reading scan input (JSON Lines of question/answer records) and writing the results back atomically."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from protector_models.data import parse_json_line
from protector_models.errors import InvalidInputError
from protector_models.pairs import Pair

OUTPUT_FIELDS = ("harm_score", "flagged", "action", "output")


@dataclass(frozen=True, slots=True)
class ScanRecord:
    """One valid input record: its line number, its fields as given, and the pair to check."""

    line: int
    fields: dict[str, Any]
    pair: Pair


def parse_records(lines: Iterable[bytes], where: str) -> Iterator[ScanRecord | InvalidInputError]:
    """Each non-blank line as a :class:`ScanRecord`, or the error that explains why it is not one."""
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            yield _to_record(parse_json_line(raw, number, where), number, where)
        except InvalidInputError as error:
            yield error


def _to_record(fields: dict[str, Any], number: int, where: str) -> ScanRecord:
    if "answer" not in fields:
        raise InvalidInputError(f"{where} line {number}: missing the `answer` field")
    question, answer = fields.get("question", ""), fields["answer"]
    for name, value in (("question", question), ("answer", answer)):
        if not isinstance(value, str):
            raise InvalidInputError(f"{where} line {number}: `{name}` must be a string, got {type(value).__name__}")
    taken = [name for name in OUTPUT_FIELDS if name in fields]
    if taken:
        raise InvalidInputError(
            f"{where} line {number}: already has field(s) {', '.join(taken)}, which scan writes; "
            "rename them so nothing you gave is overwritten"
        )
    return ScanRecord(number, fields, Pair(question, answer))


@contextmanager
def atomic_output(path: str) -> Iterator[IO[str]]:
    """Write to ``path`` through a temporary file renamed into place on success; ``-`` is stdout."""
    if path == "-":
        import sys

        yield sys.stdout
        sys.stdout.flush()
        return
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed below, renamed or removed
        "w", encoding="utf-8", dir=target.parent, prefix=f".{target.name}.", suffix=".tmp", delete=False
    )
    try:
        with handle:
            yield handle
        Path(handle.name).replace(target)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise


def dump_line(fields: dict[str, Any]) -> str:
    """One JSON Lines row, UTF-8 kept readable."""
    return json.dumps(fields, ensure_ascii=False) + "\n"
