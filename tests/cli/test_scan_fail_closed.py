"""``scan`` keeps every byte the user gave, never replaces its input, writes nothing unless the whole scan
succeeds, names input lines in every error, and counts (and can fail on) the records no model checked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from faults import SCORE_FAULTS
from typer.testing import CliRunner

from protector_models import ClassifierDetector
from protector_models.cli import app
from protector_models.cli.scan import CHUNK

runner = CliRunner()
HARMFUL = '{"question": "how do i make it", "answer": "first mix the poison and use it"}'
BENIGN = '{"answer": "here is some cake and bread"}'


def config(tmp_path: Path, detector_config: dict, **options: str) -> str:
    path = tmp_path / "protector.yaml"
    path.write_text(yaml.safe_dump({**detector_config, "refusal_text": "Withheld.", **options}))
    return str(path)


def scan(*args: str, input: str | None = None):
    return runner.invoke(app, ["scan", *args], input=input)


def test_every_byte_of_a_record_is_kept_as_read(tmp_path: Path, detector_config: dict):
    lines = [
        # a lone-surrogate escape outside question/answer, escapes, number spellings, key order, odd spacing
        '{"id": "\\ud800", "z": 1.10, "big": 1e400, "nan": NaN, "a": "caf\\u00e9 \u00e9", '
        '"answer": "here is some cake"}',
        '  {"answer" :"first mix the poison and use it","x":[1,{"y":null}]}  ',
    ]
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(lines) + "\r\n", encoding="utf-8")
    result = scan(str(source), "-o", str(tmp_path / "out.jsonl"), "--config", config(tmp_path, detector_config))
    assert result.exit_code == 0, result.output
    written = (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()
    for line, out in zip(lines, written, strict=True):
        assert out.startswith(line.strip()[:-1].rstrip())  # the record as given, then the verdict
    benign, harmful = (json.loads(out) for out in written)
    assert benign["id"] == "\ud800"
    assert (benign["action"], benign["output"]) == ("none", "here is some cake")
    assert (harmful["action"], harmful["output"], harmful["x"]) == ("refuse", "Withheld.", [1, {"y": None}])


def test_stdin_to_stdout_keeps_a_lone_surrogate_escape(tmp_path: Path, detector_config: dict):
    line = '{"note": "\\udfff", "answer": "here is some cake"}'
    result = scan("-", "-o", "-", "--config", config(tmp_path, detector_config), input=line + "\n")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(line[:-1])
    assert json.loads(result.stdout)["note"] == "\udfff"


@pytest.mark.parametrize("link", ["same path", "relative path", "symlink", "hard link"])
def test_an_output_that_is_the_input_is_refused(tmp_path: Path, detector_config: dict, monkeypatch, link: str):
    source = tmp_path / "f.jsonl"
    original = f"{BENIGN}\n{{bad line\n{HARMFUL}\n".encode()
    source.write_bytes(original)
    target = {"same path": source, "relative path": Path("f.jsonl"), "symlink": tmp_path / "l.jsonl"}.get(link)
    if link == "symlink":
        target.symlink_to(source)
    if link == "hard link":
        target = tmp_path / "h.jsonl"
        target.hardlink_to(source)
    monkeypatch.chdir(tmp_path)
    result = scan(str(source), "-o", str(target), "--skip-invalid", "--config", config(tmp_path, detector_config))
    assert result.exit_code == 2
    assert f"error: -o {target} is the input file: scan would replace your only copy of it" in result.stderr
    assert "e.g. -o " in result.stderr
    assert source.read_bytes() == original


def test_an_output_directory_is_refused_before_any_work(tmp_path: Path, detector_config: dict):
    source = tmp_path / "in.jsonl"
    source.write_text(BENIGN + "\n")
    result = scan(str(source), "-o", str(tmp_path), "--config", config(tmp_path, detector_config))
    assert result.exit_code == 2
    assert "is a directory; give a file path" in result.stderr


def test_action_raise_to_stdout_writes_nothing_and_names_every_flagged_line(tmp_path: Path, detector_config: dict):
    lines = [BENIGN] * 300
    lines[2] = lines[CHUNK + 24] = HARMFUL  # line 3, and line 281 (position 24 of the second chunk)
    result = scan(
        "-", "-o", "-", "--config", config(tmp_path, detector_config, action="raise"), input="\n".join(lines) + "\n"
    )
    assert result.exit_code == 3
    assert result.stdout == ""
    assert (
        "error: 2 record(s) flagged as harmful at lines 3, 281; the config's action is raise, so nothing was "
        "written (set action to refuse, detoxify or pass to write the results)"
    ) in result.stderr
    assert ".results" not in result.stderr


def test_a_model_failure_names_the_input_lines_and_writes_nothing(tmp_path: Path, detector_config: dict, monkeypatch):
    real = ClassifierDetector.score
    monkeypatch.setattr(ClassifierDetector, "score", lambda self, pairs: SCORE_FAULTS["nan"](real(self, pairs)))
    lines = "\n".join([BENIGN] * (CHUNK + 5)) + "\n"
    result = scan("-", "-o", "-", "--config", config(tmp_path, detector_config), input=lines)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert f"error: lines 1-{CHUNK}: detector returned scores that are not finite numbers" in result.stderr


@pytest.mark.parametrize(("on_error", "action"), [("pass", "unchecked"), ("block", "block")])
def test_unchecked_records_are_counted_and_can_fail_the_run(
    tmp_path: Path, detector_config: dict, monkeypatch, on_error: str, action: str
):
    def failing(self, pairs):
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr(ClassifierDetector, "score", failing)
    source = tmp_path / "in.jsonl"
    source.write_text(f"{HARMFUL}\n\n{BENIGN}\n")
    options = ["--config", config(tmp_path, detector_config, on_error=on_error)]
    result = scan(str(source), "-o", str(tmp_path / "out.jsonl"), *options)
    assert result.exit_code == 0, result.output
    assert "(threshold 0.5): 0 flagged, 2 unchecked, 0 skipped" in result.stderr
    assert "warning: a model failed on 2 record(s) at lines 1, 3" in result.stderr
    causes = [line for line in result.stderr.splitlines() if "cause" in line]
    assert len(causes) == 1  # once, not per record
    assert causes[0].startswith("  cause (2 record(s)): ")
    assert "CUDA out of memory" in causes[0]
    records = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [(r["action"], r["harm_score"], r["flagged"]) for r in records] == [(action, None, False)] * 2

    strict = scan(str(source), "-o", str(tmp_path / "strict.jsonl"), "--fail-on-unchecked", *options)
    assert strict.exit_code == 4
    assert (tmp_path / "strict.jsonl").read_text() == (tmp_path / "out.jsonl").read_text()  # still written


def test_fail_on_unchecked_passes_when_every_record_was_checked(tmp_path: Path, detector_config: dict):
    result = scan("-", "-o", "-", "--fail-on-unchecked", "--config", config(tmp_path, detector_config), input=BENIGN)
    assert result.exit_code == 0, result.output
    assert "0 unchecked" in result.stderr
