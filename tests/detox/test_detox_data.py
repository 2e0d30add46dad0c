"""Detoxifier data: every shape (triples, PKU-SafeRLHF rows, labelled pairs), the both-unsafe and both-safe cases,
evaluation input, and errors that name the line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from protector_models import InvalidInputError, Pair
from protector_models.config.schema import DEFAULT_REFUSAL
from protector_models.detox.data import DetoxExample, read_detox_examples, read_harmful_pairs


def write(path: Path, *records: dict | str) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records), encoding="utf-8")
    return path


def pku(prompt: str, r0: str, r1: str, safe0: bool, safe1: bool) -> dict:
    return {
        "prompt": prompt,
        "response_0": r0,
        "response_1": r1,
        "is_response_0_safe": safe0,
        "is_response_1_safe": safe1,
        "better_response_id": 0,
    }


def test_triples(tmp_path: Path):
    path = write(
        tmp_path / "t.jsonl",
        {"id": "a", "source": "s", "question": "q1", "harmful_answer": "bad", "harmless_answer": "good"},
        "",
        {"harmful_answer": "bad2", "harmless_answer": "good2"},
    )
    assert read_detox_examples(path) == [
        DetoxExample("q1", "bad", "good", source="s"),
        DetoxExample("", "bad2", "good2"),
    ]


def test_pku_rows_unsafe_to_safe_in_either_order_both_unsafe_refuse_both_safe_skip(tmp_path: Path):
    path = write(
        tmp_path / "pku.jsonl",
        pku("q0", "unsafe A", "safe A", False, True),
        pku("q1", "safe B", "unsafe B", True, False),
        pku("q2", "unsafe C", "unsafe D", False, False),
        pku("q3", "safe E", "safe F", True, True),
    )
    examples = read_detox_examples(path, refusal_text="No.")
    assert [(e.question, e.answer, e.target, e.reference) for e in examples] == [
        ("q0", "unsafe A", "safe A", True),
        ("q1", "unsafe B", "safe B", True),
        ("q2", "unsafe C", "No.", False),  # both unsafe: each is an input, the refusal its target
        ("q2", "unsafe D", "No.", False),
    ]
    assert read_detox_examples(path)[2].target == DEFAULT_REFUSAL


def test_labelled_pairs_grouped_by_question(tmp_path: Path):
    path = write(
        tmp_path / "labelled.jsonl",
        {"question": "q0", "answer": "safe A", "harmful": False, "source": "pku"},
        {"question": "q0", "answer": "unsafe A", "harmful": True, "source": "pku"},
        {"question": "q1", "answer": "unsafe B", "harmful": True},
        {"question": "q1", "answer": "unsafe C", "harmful": True},
        {"question": "q2", "answer": "safe D", "harmful": False},
    )
    examples = read_detox_examples(path, refusal_text="No.")
    assert [(e.question, e.answer, e.target, e.source) for e in examples] == [
        ("q0", "unsafe A", "safe A", "pku"),
        ("q1", "unsafe B", "No.", ""),
        ("q1", "unsafe C", "No.", ""),
    ]


def test_a_named_shape_is_enforced(tmp_path: Path):
    path = write(tmp_path / "t.jsonl", {"question": "q", "harmful_answer": "bad", "harmless_answer": "good"})
    with pytest.raises(InvalidInputError, match=r"t\.jsonl line 1: missing the `prompt` field"):
        read_detox_examples(path, shape="pku")
    with pytest.raises(InvalidInputError, match="unknown data shape 'csv'"):
        read_detox_examples(path, shape="csv")


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"question": "q", "text": "x"}, "line 2: not a detox triple .* got keys question, text"),
        ({"question": "q", "harmful_answer": "bad"}, "line 2: missing the `harmless_answer` field"),
        (
            {"question": 3, "harmful_answer": "b", "harmless_answer": "g"},
            "line 2: `question` must be a string, got int",
        ),
        ({**pku("q", "a", "b", False, True), "is_response_1_safe": "yes"}, "line 2: `is_response_1_safe` must be true"),
        ({"question": "q", "answer": "a", "harmful": 1}, "line 2: `harmful` must be true or false"),
        ("[1, 2]", "line 2: expected a JSON object"),
    ],
)
def test_bad_records_name_the_line(tmp_path: Path, record: dict | str, message: str):
    path = write(tmp_path / "d.jsonl", {"question": "q", "harmful_answer": "b", "harmless_answer": "g"}, record)
    with pytest.raises(InvalidInputError, match=message):
        read_detox_examples(path)


def test_harmful_pairs_for_evaluation_from_every_shape(tmp_path: Path):
    path = write(
        tmp_path / "mixed.jsonl",
        {"question": "q0", "harmful_answer": "bad", "harmless_answer": "good"},
        {"question": "q1", "answer": "plain"},
        {"question": "q2", "answer": "labelled harmful", "harmful": True},
        {"question": "q3", "answer": "labelled benign", "harmful": False},
        pku("q4", "unsafe", "safe", False, True),
        pku("q5", "unsafe X", "unsafe Y", False, False),
        {"answer": "no question"},
    )
    pairs, references = read_harmful_pairs(path)
    assert pairs == [
        Pair("q0", "bad"),
        Pair("q1", "plain"),
        Pair("q2", "labelled harmful"),
        Pair("q4", "unsafe"),
        Pair("q5", "unsafe X"),
        Pair("q5", "unsafe Y"),
        Pair("", "no question"),
    ]
    assert references == ["good", None, None, "safe", None, None, None]


def test_harmful_pairs_reject_unknown_records(tmp_path: Path):
    with pytest.raises(InvalidInputError, match=r"x\.jsonl line 1: expected `question` with `harmful_answer`"):
        read_harmful_pairs(write(tmp_path / "x.jsonl", {"prompt": "q"}))
