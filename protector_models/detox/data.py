"""Reading detoxifier data: (question, harmful answer, harmless target) examples from the shapes we meet.

Three shapes, told apart by the keys of each record (or named with ``shape=``):

- ``triples``: our detox triple schema, ``question``, ``harmful_answer``, ``harmless_answer``.
- ``pku``: PKU-SafeRLHF rows as published, ``prompt``, ``response_0``, ``response_1``, ``is_response_0_safe``,
  ``is_response_1_safe``. An unsafe answer is the input and the safe one its target; when both are unsafe each
  becomes an input whose target is the refusal (as the paper does); when both are safe the row teaches nothing
  about detoxifying and is skipped.
- ``labelled``: our labelled pair schema (``question``, ``answer``, ``harmful``), grouped by question; the same
  rule as ``pku`` applied to all the answers one question got (the first harmless one is every harmful one's
  target).

For evaluation only the (question, harmful answer) pair is needed: :func:`read_harmful_pairs` also takes plain
``question``/``answer`` records (and skips labelled ones marked ``harmful: false``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from protector_models.config.schema import DEFAULT_REFUSAL
from protector_models.data.labelled import iter_jsonl
from protector_models.errors import InvalidInputError
from protector_models.pairs import Pair

Shape = Literal["triples", "pku", "labelled"]
SHAPES: tuple[str, ...] = ("auto", *get_args(Shape))
_PKU_KEYS = ("prompt", "response_0", "response_1", "is_response_0_safe", "is_response_1_safe")


@dataclass(frozen=True, slots=True)
class DetoxExample:
    """One training example: the harmful ``answer`` to ``question`` and the ``target`` to rewrite it into.

    ``reference`` is False when the target is the refusal standing in for a missing harmless answer.
    """

    question: str
    answer: str
    target: str
    source: str = ""
    reference: bool = True

    @property
    def pair(self) -> Pair:
        """The (question, harmful answer) pair the detoxifier is prompted with."""
        return Pair(self.question, self.answer)


def read_detox_examples(
    path: str | Path, *, shape: str = "auto", refusal_text: str = DEFAULT_REFUSAL
) -> list[DetoxExample]:
    """Training examples from a JSON Lines file of any :data:`Shape`; errors name the file and line."""
    if shape not in SHAPES:
        raise InvalidInputError(f"unknown data shape {shape!r}; use one of {', '.join(SHAPES)}")
    name = Path(path).name
    examples: list[DetoxExample] = []
    groups: dict[str, _Group] = {}
    for number, record in iter_jsonl(path):
        where = f"{name} line {number}"
        found = _shape_of(record, where) if shape == "auto" else shape
        if found == "triples":
            examples.append(_triple(record, where))
        elif found == "pku":
            examples.extend(_pku_row(record, where, refusal_text))
        else:
            question, answer, harmful = _labelled(record, where)
            group = groups.setdefault(question, _Group(str(record.get("source", ""))))
            (group.harmful if harmful else group.harmless).append(answer)
    for question, group in groups.items():
        examples.extend(_pair_up(question, group.harmful, group.harmless, group.source, refusal_text))
    return examples


def read_harmful_pairs(path: str | Path) -> tuple[list[Pair], list[str | None]]:
    """(question, harmful answer) pairs to rewrite, with the harmless reference answer where the file has one.

    Takes detox triples, PKU-SafeRLHF rows (each unsafe response), or records with ``question`` and ``answer``
    (those with ``harmful: false`` are skipped: they need no rewriting).
    """
    name = Path(path).name
    pairs: list[Pair] = []
    references: list[str | None] = []
    for number, record in iter_jsonl(path):
        where = f"{name} line {number}"
        if "harmful_answer" in record:
            example = _triple(record, where)
            pairs.append(example.pair)
            references.append(example.target)
        elif "response_0" in record:
            for example in _pku_row(record, where, DEFAULT_REFUSAL):
                pairs.append(example.pair)
                references.append(example.target if example.reference else None)
        elif "answer" in record:
            question, answer = _text(record, "question", where, default=""), _text(record, "answer", where)
            harmful = record.get("harmful", True)
            if not isinstance(harmful, bool):
                raise InvalidInputError(f"{where}: `harmful` must be true or false, got {harmful!r}")
            if harmful:
                pairs.append(Pair(question, answer))
                references.append(None)
        else:
            raise InvalidInputError(
                f"{where}: expected `question` with `harmful_answer` (detox triple) or `answer`, or a PKU-SafeRLHF "
                f"row; got keys {', '.join(sorted(record)) or '(none)'}"
            )
    return pairs, references


@dataclass
class _Group:
    """The answers one question got, in file order."""

    source: str
    harmful: list[str] = field(default_factory=list)
    harmless: list[str] = field(default_factory=list)


def _shape_of(record: dict[str, Any], where: str) -> Shape:
    if "harmful_answer" in record:
        return "triples"
    if "response_0" in record:
        return "pku"
    if "answer" in record and "harmful" in record:
        return "labelled"
    raise InvalidInputError(
        f"{where}: not a detox triple (question, harmful_answer, harmless_answer), a PKU-SafeRLHF row "
        f"({', '.join(_PKU_KEYS)}) or a labelled pair (question, answer, harmful); "
        f"got keys {', '.join(sorted(record)) or '(none)'}"
    )


def _triple(record: dict[str, Any], where: str) -> DetoxExample:
    return DetoxExample(
        _text(record, "question", where, default=""),
        _text(record, "harmful_answer", where),
        _text(record, "harmless_answer", where),
        source=str(record.get("source", "")),
    )


def _pku_row(record: dict[str, Any], where: str, refusal_text: str) -> list[DetoxExample]:
    question = _text(record, "prompt", where)
    answers = [_text(record, f"response_{i}", where) for i in (0, 1)]
    safe = [_flag(record, f"is_response_{i}_safe", where) for i in (0, 1)]
    harmless = [answer for answer, is_safe in zip(answers, safe, strict=True) if is_safe]
    harmful = [answer for answer, is_safe in zip(answers, safe, strict=True) if not is_safe]
    return _pair_up(question, harmful, harmless, str(record.get("source", "pku-saferlhf")), refusal_text)


def _labelled(record: dict[str, Any], where: str) -> tuple[str, str, bool]:
    return (
        _text(record, "question", where, default=""),
        _text(record, "answer", where),
        _flag(record, "harmful", where),
    )


def _pair_up(
    question: str, harmful: Iterable[str], harmless: list[str], source: str, refusal_text: str
) -> list[DetoxExample]:
    """Each harmful answer with the first harmless one as its target, or the refusal when there is none."""
    target = harmless[0] if harmless else refusal_text
    return [DetoxExample(question, answer, target, source=source, reference=bool(harmless)) for answer in harmful]


def _text(record: dict[str, Any], key: str, where: str, *, default: str | None = None) -> str:
    value = record.get(key, default)
    if value is None:
        raise InvalidInputError(f"{where}: missing the `{key}` field")
    if not isinstance(value, str):
        raise InvalidInputError(f"{where}: `{key}` must be a string, got {type(value).__name__}")
    return value


def _flag(record: dict[str, Any], key: str, where: str) -> bool:
    value = record.get(key)
    if not isinstance(value, bool):
        raise InvalidInputError(f"{where}: `{key}` must be true or false, got {value!r}")
    return value
