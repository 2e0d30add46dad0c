"""Reading labelled (question, answer, harmful) data from JSON Lines, with line numbers in every error."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from protector_models.data.strict_json import StrictJSONError, loads_strictly
from protector_models.errors import InvalidInputError, shown
from protector_models.pairs import Pair, text_problem


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
    """``(line_number, record)`` for each non-blank line; a line that is not a JSON object is an error, and so
    is a JSON document spread over lines (see :func:`check_json_lines`)."""
    path = Path(path)
    with open_input(path) as handle:
        first = True
        for number, raw in enumerate(handle, start=1):
            if number == 1:
                raw = raw.removeprefix(BOM)
            if raw.strip():
                if first:
                    check_json_lines(raw, path.name)
                    first = False
                yield number, parse_json_line(raw, number, path.name)


BOM = b"\xef\xbb\xbf"
"""A UTF-8 byte-order mark, which editors on Windows put at the start of a file: skipped on line 1."""


def open_input(path: Path) -> BinaryIO:
    """``path`` opened for reading bytes, or an :class:`InvalidInputError` that names it and says why not."""
    try:
        return path.open("rb")
    except OSError as error:
        raise InvalidInputError(f"cannot read {path}: {error.strerror or error}") from None


def check_json_lines(first_line: bytes, where: str) -> None:
    """Refuse input whose first non-blank line opens a JSON array, or a JSON object spread over several lines (a
    ``.json`` document), or reads as a CSV/TSV header: no line of it is a record. The error gives a one-line
    conversion to JSON Lines."""
    start = first_line.strip()
    name = "in.json" if where == "stdin" else where
    if start.startswith(b"["):
        found, jq, python = "a JSON array", "'.[]'", "for r in json.load(sys.stdin)"
    elif start == b"{":
        found, jq, python = "one JSON object spread over several lines", ".", "for r in [json.load(sys.stdin)]"
    elif not start.startswith(b"{") and (delimiter := _table_delimiter(start, name)):
        kind = "TSV" if delimiter == "\t" else "CSV"
        name = f"in.{kind.lower()}" if where == "stdin" else where
        target = _converted_name(name)
        reader = "csv.DictReader(sys.stdin" + (", delimiter=chr(9))" if delimiter == "\t" else ")")
        raise InvalidInputError(
            f"{where} looks like {kind} (its first line is {shown(start.decode('utf-8', 'replace'), 80)}), but this "
            'command reads JSON Lines: one JSON object per line, such as {"question": "...", "answer": "..."}. '
            f"Convert it (the header row names the fields) with: python -c 'import csv, json, sys; "
            f"[print(json.dumps(r, ensure_ascii=False)) for r in {reader}]' < {name} > {target}"
        )
    else:
        return
    target = _converted_name(name)
    raise InvalidInputError(
        f"{where} holds {found}, but this command reads JSON Lines: one JSON object per line, such as "
        f'{{"question": "...", "answer": "..."}}. Convert it with: jq -c {jq} {name} > {target}  or: '
        f"python -c 'import json, sys; [print(json.dumps(r, ensure_ascii=False)) {python}]' < {name} > {target}"
    )


def _converted_name(name: str) -> str:
    """Where a conversion of ``name`` should go: ``stem.jsonl``, never ``name`` itself (a shell empties the output
    before the command reads its input)."""
    target = f"{Path(name).stem}.jsonl"
    return f"{Path(name).stem}.lines.jsonl" if target == Path(name).name else target


def _table_delimiter(first_line: bytes, name: str) -> str | None:
    """``","`` or ``"\\t"`` when ``first_line`` reads as the header of a CSV or TSV table (by the file's suffix,
    or by a row of field names: words without spaces), else None."""
    suffix = Path(name).suffix.lower()
    if suffix in (".tsv", ".tab") or (suffix != ".csv" and b"\t" in first_line):
        delimiter = "\t"
    elif suffix == ".csv" or b"," in first_line:
        delimiter = ","
    else:
        return None
    if suffix in (".csv", ".tsv", ".tab"):
        return delimiter
    fields = first_line.decode("utf-8", "replace").split(delimiter)
    plain = all(re.fullmatch(r'\s*"?[\w.-]{1,64}"?\s*', field) for field in fields)
    return delimiter if plain and len(fields) >= 2 else None


_ANSWER_NAMES = ("response", "output", "completion", "generation", "reply", "text")
_QUESTION_NAMES = ("prompt", "input", "instruction", "query")


def missing_answer(where: str, record: dict[str, Any], question_key: str, answer_key: str) -> InvalidInputError:
    """The error for a record without ``answer_key``: the keys it has, and the options that would read them."""
    keys = list(record)
    found = ", ".join(shown(key, 40) for key in keys[:12]) + (f" and {len(keys) - 12} more" if len(keys) > 12 else "")
    options = [
        f"--{option} {name}"
        for option, names, key in (
            ("question-key", _QUESTION_NAMES, question_key),
            ("answer-key", _ANSWER_NAMES, answer_key),
        )
        for name in [next((k for k in keys if k in names or k.casefold() == key.casefold()), None)]
        if name is not None and key not in record
    ]
    hint = " ".join(options) if options else "--answer-key KEY (and --question-key KEY)"
    return InvalidInputError(
        f"{where}: missing the `{answer_key}` field (keys found: {found or 'none'}); if the answer is under another "
        f"key, name it: {hint}"
    )


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
        record = loads_strictly(text)
    except json.JSONDecodeError as error:
        bare_cr = "\r" in text.rstrip("\r\n")
        hint = (
            "; it holds a carriage return (\\r) without a line feed: JSON Lines ends each line with \\n "
            "(convert old Mac line ends with tr '\\r' '\\n')"
        )
        raise InvalidInputError(
            f"{where} line {number}: not valid JSON ({error.msg} at column {error.colno}){hint * bare_cr}"
        ) from None
    except StrictJSONError as error:
        raise InvalidInputError(f"{where} line {number}: {error}") from None
    if not isinstance(record, dict):
        raise InvalidInputError(f"{where} line {number}: expected a JSON object, got {type(record).__name__}")
    return record


@dataclass(frozen=True, slots=True)
class PreferencePair:
    """Two answers to one question where ``worse`` is the more harmful (for the pairwise ranking loss)."""

    question: str
    better: str
    worse: str
    source: str = ""


def read_labelled(
    path: str | Path, *, question_key: str = "question", answer_key: str = "answer"
) -> list[LabelledPair]:
    """Labelled pairs from any supported row shape, detected per row.

    - ours: ``question``, ``answer``, ``harmful`` (optional ``source``, ``category``); the first two may be
      named otherwise with ``question_key`` and ``answer_key``;
    - BeaverTails: ``prompt``, ``response``, ``is_safe`` (``category`` may be a dict of flags);
    - PKU-SafeRLHF: ``prompt``, ``response_0``/``response_1``, ``is_response_0_safe``/``is_response_1_safe``
      (two pairs per row). ``is_safe`` means *not* harmful.
    """
    pairs = []
    for number, record in iter_jsonl(path):
        pairs.extend(_labelled_from(record, f"{Path(path).name} line {number}", question_key, answer_key))
    return pairs


def read_preferences(path: str | Path) -> list[PreferencePair]:
    """Preference pairs from PKU-SafeRLHF rows (``safer_response_id``), detox triples (``harmful_answer`` is the
    worse), or ``chosen``/``rejected`` transcripts ("Human: ... Assistant: ...", ``chosen`` the less harmful),
    split into the shared context and the last reply."""
    preferences = []
    for number, record in iter_jsonl(path):
        where = f"{Path(path).name} line {number}"
        if "chosen" in record and "rejected" in record:
            preferences.append(_from_transcripts(record, where))
        elif "harmful_answer" in record and "harmless_answer" in record:
            preferences.append(
                PreferencePair(
                    _text(record, "question", where),
                    _text(record, "harmless_answer", where),
                    _text(record, "harmful_answer", where),
                    str(record.get("source", "")),
                )
            )
        elif "safer_response_id" in record:
            better = _int(record["safer_response_id"], where, "safer_response_id")
            if better not in (0, 1):
                raise InvalidInputError(f"{where}: `safer_response_id` must be 0 or 1, got {better}")
            prompt = _text(record, "prompt", where)
            responses = [_text(record, "response_0", where), _text(record, "response_1", where)]
            preferences.append(PreferencePair(prompt, responses[better], responses[1 - better], "pku-saferlhf"))
        else:
            raise InvalidInputError(
                f"{where}: not a preference row (needs chosen/rejected, harmful_answer/harmless_answer, "
                "or safer_response_id)"
            )
    return preferences


def _labelled_from(record: dict[str, Any], where: str, question_key: str, answer_key: str) -> list[LabelledPair]:
    beavertails = "response" in record and "is_safe" in record and "harmful" not in record
    if answer_key in record and not beavertails:
        if "harmful" not in record:
            raise InvalidInputError(
                f"{where}: missing the `harmful` field: each labelled record needs `harmful`: true or false "
                f"(keys found: {', '.join(shown(key, 40) for key in list(record)[:12])})"
            )
        harmful = record["harmful"]
        if not isinstance(harmful, bool):
            raise InvalidInputError(f"{where}: `harmful` must be true or false, got {shown(harmful, 60)}")
        category = record.get("category")
        return [
            LabelledPair(
                _text(record, question_key, where, default=""),
                _text(record, answer_key, where),
                harmful,
                source=str(record.get("source", "")),
                category=category if isinstance(category, str) else None,
            )
        ]
    if beavertails:
        return [
            LabelledPair(
                _text(record, "prompt", where),
                _text(record, "response", where),
                not _bool(record["is_safe"], where, "is_safe"),
                source="beavertails",
                category=_category(record.get("category")),
            )
        ]
    if "response_0" in record and "is_response_0_safe" in record:
        prompt = _text(record, "prompt", where)
        return [
            LabelledPair(
                prompt,
                _text(record, f"response_{i}", where),
                not _bool(record[f"is_response_{i}_safe"], where, f"is_response_{i}_safe"),
                source="pku-saferlhf",
            )
            for i in (0, 1)
        ]
    if "harmful" in record:  # our shape with other names
        raise missing_answer(where, record, question_key, answer_key)
    raise InvalidInputError(
        f"{where}: unknown row shape (keys found: {', '.join(shown(key, 40) for key in list(record)[:12])}); "
        f"expected {question_key}/{answer_key}/harmful (name other keys with --question-key / --answer-key), "
        "BeaverTails prompt/response/is_safe, or PKU-SafeRLHF prompt/response_0/response_1/is_response_0_safe/"
        "is_response_1_safe"
    )


def _from_transcripts(record: dict[str, Any], where: str) -> PreferencePair:
    chosen, rejected = _text(record, "chosen", where), _text(record, "rejected", where)
    marker = "\n\nAssistant:"
    cut_chosen, cut_rejected = chosen.rfind(marker), rejected.rfind(marker)
    if cut_chosen < 0 or cut_rejected < 0:
        raise InvalidInputError(f"{where}: `chosen` and `rejected` must be 'Human: ... Assistant: ...' transcripts")
    question = chosen[:cut_chosen].strip()
    return PreferencePair(
        question,
        chosen[cut_chosen + len(marker) :].strip(),
        rejected[cut_rejected + len(marker) :].strip(),
        str(record.get("source", "")),
    )


def _text(record: dict[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = record.get(key, default)
    if not isinstance(value, str):
        raise InvalidInputError(f"{where}: `{key}` must be text, got {type(value).__name__}")
    problem = text_problem(value)
    if problem:
        raise InvalidInputError(f"{where}: `{key}` is not valid text: {problem}; fix the \\u escape")
    return value


def _bool(value: object, where: str, key: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidInputError(f"{where}: `{key}` must be true or false, got {value!r}")
    return value


def _int(value: object, where: str, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(f"{where}: `{key}` must be an integer, got {value!r}")
    return value


def _category(value: object) -> str | None:
    """BeaverTails gives a dict of category flags: keep the first one set, if any."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return next((str(name) for name, flagged in value.items() if flagged), None)
    return None
