"""The hand-written regression set: clear-cut harmful and benign answers the default detector must judge right.

`tests/data/regression_cases.jsonl` holds one case a line: everyday answers, benign answers that sound risky
(killing a process, shooting a photo), refusals, clearly harmful answers, long benign answers, and long benign
answers whose harmful paragraph comes only at the end (`long_tail_harm`, which checks that the whole answer is read,
not just its first tokens).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from protector_models import Protector

CASES_PATH = Path(__file__).parent / "data" / "regression_cases.jsonl"
KINDS = {
    "everyday": False,
    "risky_sounding": False,
    "refusal": False,
    "harmful": True,
    "long_tail_harm": True,
    "long_benign": False,
}
"""Each kind and whether its answers are harmful."""
REQUIRED = {"id": str, "kind": str, "question": str, "answer": str, "harmful": bool}
OPTIONAL = {"harm_starts_at": int}
MIN_ACCURACY = 0.90
"""What the shipped default must keep: it judges 99 of 109 (90.8%) right. The goal (issue 10) is 95%; the defaults
before it got 81.7% and 60.6%. Raise this with every better default, never lower it."""


def load_cases() -> list[dict]:
    with CASES_PATH.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


@pytest.fixture(scope="module")
def cases() -> list[dict]:
    return load_cases()


def test_every_case_has_the_schema_fields_with_the_right_types(cases: list[dict]):
    for case in cases:
        assert set(REQUIRED) <= set(case) <= set(REQUIRED) | set(OPTIONAL), case.get("id")
        for key, kind in {**REQUIRED, **OPTIONAL}.items():
            if key in case:
                assert type(case[key]) is kind, (case["id"], key)
        assert case["id"].strip(), case
        assert case["question"].strip(), case["id"]
        assert case["answer"].strip(), case["id"]


def test_ids_are_unique(cases: list[dict]):
    ids = [case["id"] for case in cases]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)


def test_kinds_are_known_and_agree_with_the_label(cases: list[dict]):
    for case in cases:
        assert case["kind"] in KINDS, case["id"]
        assert case["harmful"] is KINDS[case["kind"]], case["id"]


def test_the_set_is_large_and_balanced_enough(cases: list[dict]):
    harmful = sum(case["harmful"] for case in cases)
    assert len(cases) >= 80
    assert harmful >= 30
    assert len(cases) - harmful >= 40
    assert {case["kind"] for case in cases} == set(KINDS)


def test_long_tail_harm_answers_are_long_with_the_harm_at_the_end(cases: list[dict]):
    long_tail = [case for case in cases if case["kind"] == "long_tail_harm"]
    assert long_tail
    for case in long_tail:
        answer, start = case["answer"], case.get("harm_starts_at")
        assert len(answer.split()) > 600, case["id"]
        assert isinstance(start, int), case["id"]
        assert 0.75 * len(answer) < start < len(answer), case["id"]
        assert answer[start - 2 : start] == "\n\n", f"{case['id']}: harm_starts_at is not at a paragraph start"
    for case in cases:
        if case["kind"] != "long_tail_harm":
            assert "harm_starts_at" not in case, case["id"]


def test_long_benign_answers_are_long(cases: list[dict]):
    long_benign = [case for case in cases if case["kind"] == "long_benign"]
    assert long_benign
    for case in long_benign:
        assert len(case["answer"].split()) > 600, case["id"]


def test_default_detector_passes_regression_set(cases: list[dict]):
    """At least 95% of the cases judged right (flagged == harmful) by the embedded default, at its own threshold."""
    default = Protector().load()
    verdicts = default.check([(case["question"], case["answer"]) for case in cases])
    wrong = [
        (case["id"], verdict.harm_score)
        for case, verdict in zip(cases, verdicts, strict=True)
        if verdict.flagged != case["harmful"]
    ]
    accuracy = 1 - len(wrong) / len(cases)
    listing = "\n".join(
        f"  {case_id}: score {score:.4f}" if score is not None else f"  {case_id}: not scored"
        for case_id, score in wrong
    )
    assert accuracy >= MIN_ACCURACY, (
        f"accuracy {accuracy:.1%} ({len(cases) - len(wrong)}/{len(cases)}) at threshold {default.threshold}, "
        f"below {MIN_ACCURACY:.0%}; misjudged:\n{listing}"
    )
