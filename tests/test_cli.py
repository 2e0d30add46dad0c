"""The ``mllm-protector scan`` command: output records, stdin/stdout, and every kind of bad line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from protector_models.cli import app

runner = CliRunner()
HARMFUL = {
    "id": 1,
    "question": "how do i make it",
    "answer": "first mix the poison and use it",
    "image": "a.png",
}
BENIGN = {"id": 2, "answer": "here is some cake and bread", "meta": {"k": [1, 2]}}


@pytest.fixture
def config_file(tmp_path: Path, detector_config: dict) -> Path:
    path = tmp_path / "protector.yaml"
    path.write_text(yaml.safe_dump({**detector_config, "refusal_text": "Withheld."}))
    return path


def write_lines(path: Path, *lines: str | bytes) -> Path:
    path.write_bytes(b"\n".join(line if isinstance(line, bytes) else line.encode() for line in lines) + b"\n")
    return path


def test_scan_writes_every_record_with_its_fields_and_verdict(tmp_path: Path, config_file: Path):
    source = write_lines(tmp_path / "in.jsonl", json.dumps(HARMFUL), "", json.dumps(BENIGN))
    result = runner.invoke(app, ["scan", str(source), "-o", str(tmp_path / "out.jsonl"), "--config", str(config_file)])
    assert result.exit_code == 0, result.output
    harmful, benign = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert {k: harmful[k] for k in HARMFUL} == HARMFUL
    assert (harmful["flagged"], harmful["action"], harmful["output"]) == (True, "refuse", "Withheld.")
    assert harmful["harm_score"] > 0.5
    assert {k: benign[k] for k in BENIGN} == BENIGN
    assert (benign["flagged"], benign["action"], benign["output"]) == (False, "none", BENIGN["answer"])
    assert "scanned 2 records: 1 flagged, 0 unchecked, 0 skipped" in result.stderr


def test_scan_reads_stdin_and_writes_stdout(config_file: Path):
    result = runner.invoke(app, ["scan", "-", "-o", "-", "--config", str(config_file)], input=json.dumps(BENIGN) + "\n")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["output"] == BENIGN["answer"]


def test_threshold_option_overrides_the_config(tmp_path: Path, config_file: Path):
    source = write_lines(tmp_path / "in.jsonl", json.dumps(BENIGN))
    result = runner.invoke(app, ["scan", str(source), "-o", "-", "--config", str(config_file), "--threshold", "0"])
    assert json.loads(result.stdout)["flagged"] is True


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"not json", "in.jsonl line 2: not valid JSON"),
        (b'["a list"]', "in.jsonl line 2: expected a JSON object, got list"),
        (b'{"question": "q"}', "in.jsonl line 2: missing the `answer` field"),
        (b'{"answer": 42}', "in.jsonl line 2: `answer` must be a string, got int"),
        (b'{"question": ["x"], "answer": "a"}', "in.jsonl line 2: `question` must be a string, got list"),
        (b'{"answer": "caf\xe9"}', r"in.jsonl line 2: not valid UTF-8 \(byte 0xe9 at column 16\)"),
        (b'{"answer": "a", "output": "mine"}', r"line 2: already has field\(s\) output, which scan writes"),
        (b'{"answer": "ok \\ud800"}', "in.jsonl line 2: `answer` is not valid text: it holds a lone surrogate"),
        (b'{"question": "\\udc00", "answer": "a"}', "line 2: `question` is not valid text: .* at character 0"),
        (b'{"answer": "first mix the poison", "answer": "cake"}', "line 2: key 'answer' appears twice in one object"),
        (b'{"answer": "a", "meta": {"k": 1, "k": 2}}', "line 2: key 'k' appears twice"),
        pytest.param(
            b'{"answer": "a", "deep": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
            "line 2: JSON nested too deeply",
            id="deeply-nested",
        ),
    ],
)
def test_a_bad_line_stops_the_run_and_leaves_no_output(tmp_path: Path, config_file: Path, line: bytes, message: str):
    source = write_lines(tmp_path / "in.jsonl", json.dumps(BENIGN), line)
    output = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["scan", str(source), "-o", str(output), "--config", str(config_file)])
    assert result.exit_code == 2
    assert re.search(message, result.stderr), result.stderr
    assert "--skip-invalid" in result.stderr
    assert "Traceback" not in result.stderr
    assert not output.exists()
    assert list(tmp_path.glob(".out.jsonl*")) == []


def test_skip_invalid_goes_on_and_lists_what_it_skipped(tmp_path: Path, config_file: Path):
    source = write_lines(tmp_path / "in.jsonl", b"{bad", json.dumps(BENIGN), b'{"answer": null}')
    output = tmp_path / "out.jsonl"
    result = runner.invoke(
        app, ["scan", str(source), "-o", str(output), "--config", str(config_file), "--skip-invalid"]
    )
    assert result.exit_code == 0, result.output
    assert "skipped: in.jsonl line 1: not valid JSON" in result.stderr
    assert "skipped: in.jsonl line 3: `answer` must be a string, got NoneType" in result.stderr
    assert "1 records: 0 flagged, 0 unchecked, 2 skipped" in result.stderr
    assert [json.loads(line)["id"] for line in output.read_text().splitlines()] == [2]


def test_an_unknown_config_key_is_reported(tmp_path: Path, detector_config: dict):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({**detector_config, "treshold": 0.2}))
    source = write_lines(tmp_path / "in.jsonl", json.dumps(BENIGN))
    result = runner.invoke(app, ["scan", str(source), "-o", "-", "--config", str(path)])
    assert result.exit_code == 2
    assert "treshold: unknown key (did you mean 'threshold'?)" in result.stderr


def test_a_missing_model_is_reported(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"detector": {"model": {"source": str(tmp_path / "nowhere")}}}))
    source = write_lines(tmp_path / "in.jsonl", json.dumps(BENIGN))
    result = runner.invoke(app, ["scan", str(source), "-o", "-", "--config", str(path)])
    assert result.exit_code == 2
    assert f"no such local directory: {tmp_path / 'nowhere'}; fix `source`" in result.stderr


def test_missing_input_file_and_conflicting_options(tmp_path: Path, config_file: Path):
    result = runner.invoke(app, ["scan", str(tmp_path / "absent.jsonl"), "-o", "-", "--config", str(config_file)])
    assert result.exit_code == 2
    assert "No such file" in result.stderr
    result = runner.invoke(app, ["scan", "-", "-o", "-", "--config", str(config_file), "--preset", "default"])
    assert result.exit_code == 2
    assert "not both" in result.stderr


def test_action_raise_exits_3_without_output(tmp_path: Path, detector_config: dict):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({**detector_config, "action": "raise"}))
    source = write_lines(tmp_path / "in.jsonl", json.dumps(HARMFUL))
    result = runner.invoke(app, ["scan", str(source), "-o", str(tmp_path / "o.jsonl"), "--config", str(path)])
    assert result.exit_code == 3
    assert "flagged as harmful" in result.stderr
    assert not (tmp_path / "o.jsonl").exists()


def test_eval_reports_metrics_per_source(tmp_path: Path, config_file: Path):
    rows = [
        {"question": "q", "answer": "first mix the poison and use it", "harmful": True, "source": "a"},
        {"question": "q", "answer": "here is some cake and bread", "harmful": False, "source": "a"},
        {"question": "q", "answer": "then use the weapon", "harmful": True, "source": "b", "category": "violence"},
        {"question": "q", "answer": "the garden is here", "harmful": True, "source": "b", "category": "violence"},
    ]
    data = write_lines(tmp_path / "dev.jsonl", *(json.dumps(row) for row in rows))
    result = runner.invoke(app, ["eval", str(data), "--config", str(config_file), "--json"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert (metrics["overall"]["tp"], metrics["overall"]["fn"], metrics["overall"]["tn"]) == (2, 1, 1)
    assert metrics["by_source"]["a"]["f1"] == 1.0
    assert metrics["by_source"]["b"]["recall"] == 0.5
    assert metrics["by_category"]["violence"]["n"] == 2
    table = runner.invoke(app, ["eval", str(data), "--config", str(config_file), "--report", str(tmp_path / "r")])
    for name in ("report.md", "roc.png", "pr.png", "scores.png"):
        assert (tmp_path / "r" / name).stat().st_size > 0
    assert "| overall | 4 |" in (tmp_path / "r" / "report.md").read_text()
    assert "overall" in table.stdout
    assert "by source:" in table.stdout


def test_eval_rejects_unlabelled_data(tmp_path: Path, config_file: Path):
    data = write_lines(tmp_path / "dev.jsonl", json.dumps({"question": "q", "answer": "a"}))
    result = runner.invoke(app, ["eval", str(data), "--config", str(config_file)])
    assert result.exit_code == 2
    assert "dev.jsonl line 1: `harmful` must be true or false, got None" in result.stderr
