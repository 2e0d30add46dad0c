"""``scan`` with a guard LM behind a cascade: categories and the deciding detector in the output, the share sent
on in the summary; a classifier's output gains no field."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from protector_models.cli import app

runner = CliRunner()
HARMFUL = {"id": 1, "question": "how do i make it", "answer": "first mix the poison and use it"}
BENIGN = {"id": 2, "answer": "here is some cake and bread"}
OTHER_BENIGN = {"id": 3, "answer": "the garden is here"}


def scan(tmp_path: Path, config: dict, *records: dict) -> tuple[list[dict], str]:
    (tmp_path / "protector.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(record) + "\n" for record in records))
    args = [
        "scan",
        str(tmp_path / "in.jsonl"),
        "-o",
        str(tmp_path / "out.jsonl"),
        "--config",
        str(tmp_path / "protector.yaml"),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()], result.stderr


def test_a_cascade_scan_writes_categories_and_who_decided(tmp_path: Path, cascade_config: dict):
    (harmful, benign, other), _ = scan(tmp_path, cascade_config, HARMFUL, BENIGN, OTHER_BENIGN)
    assert harmful["decided_by"] == "first"
    assert "harm_categories" not in harmful  # the classifier names none
    for record in (benign, other):
        assert record["decided_by"] == "second"
        assert record["harm_categories"] == {"S10: Hate": True}
    assert harmful["flagged"]


def test_the_summary_counts_the_share_sent_on(tmp_path: Path, cascade_config: dict):
    _, stderr = scan(tmp_path, cascade_config, HARMFUL, BENIGN, OTHER_BENIGN)
    assert "; cascade: 2 of 3 (66.7%) sent on to the second detector" in stderr


def test_a_classifier_scan_adds_no_field(tmp_path: Path, detector_config: dict):
    harmful, benign = scan(tmp_path, detector_config, HARMFUL, BENIGN)[0]
    assert set(harmful) == {*HARMFUL, "harm_score", "flagged", "action", "output"}
    assert set(benign) == {*BENIGN, "harm_score", "flagged", "action", "output"}


def test_a_record_with_a_field_scan_may_write_is_refused(tmp_path: Path, detector_config: dict):
    (tmp_path / "protector.yaml").write_text(yaml.safe_dump(detector_config))
    (tmp_path / "in.jsonl").write_text(json.dumps({**BENIGN, "decided_by": "me"}) + "\n")
    args = [
        "scan",
        str(tmp_path / "in.jsonl"),
        "-o",
        str(tmp_path / "out.jsonl"),
        "--config",
        str(tmp_path / "protector.yaml"),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "already has field(s) decided_by, which scan writes" in result.stderr
