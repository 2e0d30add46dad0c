"""The ``mllm-protector scan`` command: output records, stdin/stdout, and every kind of bad line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from protector_models import ConfigError, Protector, ProtectorConfig
from protector_models.cli import app
from protector_models.cli import scan as scan_module

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
    assert f"scanned 2 records with config {config_file} (threshold 0.5): 1 flagged, 0 unchecked, 0 skipped" in (
        result.stderr
    )


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
            b'{"answer": "a", "n": ' + b"9" * 5000 + b"}", "line 2: holds an integer of more than", id="long-int"
        ),
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


@pytest.mark.parametrize("via", ["file", "stdin"])
def test_bare_cr_line_ends_are_read_the_same_from_a_file_and_stdin(tmp_path: Path, config_file: Path, via: str):
    data = (json.dumps(BENIGN) + "\r" + json.dumps(HARMFUL) + "\r").encode()
    source = tmp_path / "in.jsonl"
    source.write_bytes(data)
    where = ["-"] if via == "stdin" else [str(source)]
    result = runner.invoke(app, ["scan", *where, "-o", "-", "--config", str(config_file)], input=data)
    assert result.exit_code == 2, result.output
    assert "line 1: not valid JSON (Extra data" in result.stderr
    assert "it holds a carriage return (\\r) without a line feed" in result.stderr
    assert result.stdout == ""


def test_skip_invalid_goes_on_and_lists_what_it_skipped(tmp_path: Path, config_file: Path):
    big = b'{"answer": "a", "n": ' + b"9" * 5000 + b"}"
    source = write_lines(tmp_path / "in.jsonl", b"{bad", json.dumps(BENIGN), b'{"answer": null}', big)
    output = tmp_path / "out.jsonl"
    result = runner.invoke(
        app, ["scan", str(source), "-o", str(output), "--config", str(config_file), "--skip-invalid"]
    )
    assert result.exit_code == 0, result.output
    assert "skipped: in.jsonl line 1: not valid JSON" in result.stderr
    assert "skipped: in.jsonl line 3: `answer` must be a string, got NoneType" in result.stderr
    assert "skipped: in.jsonl line 4: holds an integer of more than 4300 digits" in result.stderr
    assert "scanned 1 records with config" in result.stderr
    assert "0 flagged, 0 unchecked, 3 skipped" in result.stderr
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
    assert f"error: cannot read {tmp_path / 'absent.jsonl'}: No such file or directory\n" == result.stderr
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
    assert "dev.jsonl line 1: missing the `harmful` field: each labelled record needs `harmful`: true or false" in (
        result.stderr
    )
    assert "got None" not in result.stderr
    data = write_lines(tmp_path / "dev.jsonl", json.dumps({"question": "q", "answer": "a", "harmful": "yes"}))
    result = runner.invoke(app, ["eval", str(data), "--config", str(config_file)])
    assert "dev.jsonl line 1: `harmful` must be true or false, got 'yes'" in result.stderr


# --- what a new user trips over (issue 14) ---

ARRAY = [{"question": "q", "answer": "here is some cake"}, {"question": "q", "answer": "first mix the poison"}]


@pytest.mark.parametrize(
    ("text", "found"),
    [
        (json.dumps(ARRAY, indent=2), "a JSON array"),
        (json.dumps(ARRAY), "a JSON array"),
        ("\n  " + json.dumps(ARRAY), "a JSON array"),
        (json.dumps(ARRAY[0], indent=2), "one JSON object spread over several lines"),
    ],
)
@pytest.mark.parametrize("skip", [[], ["--skip-invalid"]])
def test_a_json_document_is_refused_with_how_to_convert_it(tmp_path: Path, config_file: Path, text, found, skip):
    source = tmp_path / "in.json"
    source.write_text(text)
    output = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["scan", str(source), "-o", str(output), "--config", str(config_file), *skip])
    assert result.exit_code == 2
    assert f"error: in.json holds {found}, but this command reads JSON Lines: one JSON object per line" in (
        result.stderr
    )
    assert "Convert it with: jq -c " in result.stderr
    assert "in.json > in.jsonl" in result.stderr
    assert "--skip-invalid" not in result.stderr  # skipping every line is no way out
    assert "skipped:" not in result.stderr
    assert not output.exists()


def test_the_suggested_conversion_gives_a_file_that_scans(tmp_path: Path, config_file: Path):
    import shlex
    import subprocess
    import sys

    source = tmp_path / "in.json"
    source.write_text(json.dumps(ARRAY, indent=2))
    result = runner.invoke(app, ["scan", str(source), "-o", "-", "--config", str(config_file)])
    command = result.stderr.split(" or: ", 1)[1].strip()
    assert command.startswith("python -c ")
    args = shlex.split(command.removeprefix("python ").split(" < ")[0])
    converted = subprocess.run([sys.executable, *args], input=source.read_bytes(), capture_output=True, check=True)
    (tmp_path / "in.jsonl").write_bytes(converted.stdout)
    result = runner.invoke(app, ["scan", str(tmp_path / "in.jsonl"), "-o", "-", "--config", str(config_file)])
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["flagged"] for line in result.stdout.splitlines()] == [False, True]


def test_an_array_in_a_jsonl_file_is_converted_into_another_file(tmp_path: Path, config_file: Path):
    """`jq ... arr.jsonl > arr.jsonl` would empty the input before jq reads it: the suggestion names another file."""
    source = tmp_path / "arr.jsonl"
    source.write_text(json.dumps(ARRAY))
    result = runner.invoke(app, ["scan", str(source), "-o", "-", "--config", str(config_file)])
    assert result.exit_code == 2
    assert "jq -c '.[]' arr.jsonl > arr.lines.jsonl" in result.stderr
    assert "< arr.jsonl > arr.lines.jsonl" in result.stderr


@pytest.mark.parametrize(
    ("name", "text", "kind"),
    [
        (
            "in.csv",
            'question,answer\nhow do i make it,"first mix the poison, and use it"\nq,here is some cake\n',
            "CSV",
        ),
        ("in.tsv", "question\tanswer\nhow do i make it\tfirst mix the poison\nq\there is some cake\n", "TSV"),
        ("data.txt", "question,answer\nhow do i make it,first mix the poison\nq,here is some cake\n", "CSV"),
    ],
)
def test_a_csv_or_tsv_file_gets_a_conversion_that_works(tmp_path: Path, config_file: Path, name, text, kind):
    import shlex
    import subprocess
    import sys

    source = tmp_path / name
    source.write_text(text)
    result = runner.invoke(app, ["scan", str(source), "-o", "-", "--config", str(config_file)])
    assert result.exit_code == 2
    assert f"error: {name} looks like {kind} (its first line is " in result.stderr
    assert "not valid JSON" not in result.stderr
    command = result.stderr.split(" with: ", 1)[1].strip()
    assert command.endswith(f"< {name} > {Path(name).stem}.jsonl")
    args = shlex.split(command.removeprefix("python ").split(" < ")[0])
    converted = subprocess.run([sys.executable, *args], input=source.read_bytes(), capture_output=True, check=True)
    (tmp_path / "in.jsonl").write_bytes(converted.stdout)
    result = runner.invoke(app, ["scan", str(tmp_path / "in.jsonl"), "-o", "-", "--config", str(config_file)])
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["flagged"] for line in result.stdout.splitlines()] == [True, False]


def test_a_line_of_prose_with_a_comma_is_not_taken_for_csv(tmp_path: Path, config_file: Path):
    source = write_lines(tmp_path / "in.jsonl", "hello, this is not json at all")
    result = runner.invoke(app, ["scan", str(source), "-o", "-", "--config", str(config_file)])
    assert "in.jsonl line 1: not valid JSON" in result.stderr


def test_an_array_on_stdin_is_refused_too(config_file: Path):
    result = runner.invoke(app, ["scan", "-", "-o", "-", "--config", str(config_file)], input=json.dumps(ARRAY))
    assert result.exit_code == 2
    assert "error: stdin holds a JSON array" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("content", "skip", "why"),
    [
        (b"", [], "it holds no records"),
        (b"\n\n", [], "it holds no records"),
        (b"{bad\n" + b'{"question": "q"}\n', ["--skip-invalid"], "every line is invalid (2 skipped, listed above)"),
    ],
)
def test_scanning_nothing_is_a_failure(tmp_path: Path, config_file: Path, content, skip, why):
    source = tmp_path / "in.jsonl"
    source.write_bytes(content)
    output = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["scan", str(source), "-o", str(output), "--config", str(config_file), *skip])
    assert result.exit_code == 2
    assert f"error: nothing to scan in in.jsonl: {why}; nothing was written" in result.stderr
    assert not output.exists()


def rows_with(question_key: str, answer_key: str) -> list[str]:
    return [
        json.dumps({"id": 1, question_key: "how do i make it", answer_key: "first mix the poison and use it"}),
        json.dumps({"id": 2, question_key: "tell me about this", answer_key: "here is some cake and bread"}),
    ]


@pytest.mark.parametrize(("question_key", "answer_key"), [("prompt", "response"), ("instruction", "completion")])
def test_other_field_names_are_named_and_read_with_key_options(
    tmp_path: Path, config_file: Path, question_key, answer_key
):
    source = write_lines(tmp_path / "in.jsonl", *rows_with(question_key, answer_key))
    result = runner.invoke(app, ["scan", str(source), "-o", "-", "--config", str(config_file)])
    assert result.exit_code == 2
    assert (
        f"in.jsonl line 1: missing the `answer` field (keys found: 'id', '{question_key}', '{answer_key}'); if the "
        f"answer is under another key, name it: --question-key {question_key} --answer-key {answer_key}"
    ) in result.stderr
    keys = ["--question-key", question_key, "--answer-key", answer_key]
    renamed = runner.invoke(app, ["scan", str(source), "-o", "-", "--config", str(config_file), *keys])
    assert renamed.exit_code == 0, renamed.output
    standard = write_lines(tmp_path / "std.jsonl", *rows_with("question", "answer"))
    expected = runner.invoke(app, ["scan", str(standard), "-o", "-", "--config", str(config_file)])
    scores = [json.loads(line)["harm_score"] for line in renamed.stdout.splitlines()]
    assert scores == [json.loads(line)["harm_score"] for line in expected.stdout.splitlines()]
    assert [json.loads(line)["flagged"] for line in renamed.stdout.splitlines()] == [True, False]
    # the question is read, not dropped: the model scores the pair differently without it
    without = Protector.from_config(ProtectorConfig.from_yaml(config_file)).check(
        [("", "first mix the poison and use it")]
    )
    assert without[0].harm_score != pytest.approx(scores[0], abs=1e-6)


def test_an_answer_named_output_clashes_with_what_scan_writes_and_says_how_to_rename(tmp_path: Path, config_file):
    source = write_lines(tmp_path / "in.jsonl", json.dumps({"input": "q", "output": "here is some cake"}))
    result = runner.invoke(app, ["scan", str(source), "-o", "-", "--config", str(config_file)])
    assert "missing the `answer` field (keys found: 'input', 'output'); if the answer is under another key" in (
        result.stderr
    )
    assert "--question-key input --answer-key output" in result.stderr
    keys = ["--question-key", "input", "--answer-key", "output"]
    result = runner.invoke(app, ["scan", str(source), "-o", "-", "--config", str(config_file), *keys])
    assert result.exit_code == 2
    assert "already has field(s) output, which scan writes" in result.stderr
    assert "jq -c '.answer = .output | del(.output)' in.jsonl > renamed.jsonl" in result.stderr


def test_eval_reads_other_field_names(tmp_path: Path, config_file: Path):
    rows = [
        {"prompt": "q", "response": "first mix the poison and use it", "harmful": True},
        {"prompt": "q", "response": "here is some cake and bread", "harmful": False},
    ]
    data = write_lines(tmp_path / "dev.jsonl", *(json.dumps(row) for row in rows))
    result = runner.invoke(app, ["eval", str(data), "--config", str(config_file), "--json"])
    assert result.exit_code == 2
    assert "dev.jsonl line 1: missing the `answer` field (keys found: 'prompt', 'response', 'harmful')" in (
        result.stderr
    )
    assert "--question-key prompt --answer-key response" in result.stderr
    keys = ["--question-key", "prompt", "--answer-key", "response"]
    result = runner.invoke(app, ["eval", str(data), "--config", str(config_file), "--json", *keys])
    assert result.exit_code == 0, result.output
    overall = json.loads(result.stdout)["overall"]
    assert (overall["tp"], overall["tn"], overall["fp"], overall["fn"]) == (1, 1, 0, 0)


def test_the_summary_names_the_preset_and_threshold_and_a_terminal_lists_what_was_flagged(
    tmp_path: Path, config_file: Path, monkeypatch
):
    long = "first mix the poison\n\x1b[31m then use the weapon and steal the bomb, then mix the poison and use it"
    rows = [json.dumps(HARMFUL), json.dumps(BENIGN), json.dumps({"answer": long})]
    source = write_lines(tmp_path / "in.jsonl", *rows)
    quiet = runner.invoke(app, ["scan", str(source), "-o", "-", "--config", str(config_file)])
    assert "  line " not in quiet.stderr  # not a terminal (a log, CI): flagged answers are not echoed
    monkeypatch.setattr(scan_module, "_on_terminal", lambda: True)
    result = runner.invoke(app, ["scan", str(source), "-o", "-", "--config", str(config_file)])
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["id"] for line in result.stdout.splitlines()[:2]] == [1, 2]  # stdout stays JSON Lines
    summary, first, third = result.stderr.splitlines()[-3:]
    assert summary.startswith(f"scanned 3 records with config {config_file} (threshold 0.5): 2 flagged")
    scores = [json.loads(line)["harm_score"] for line in result.stdout.splitlines()]
    assert first == f"  line 1, id 1: {scores[0]:.3f}  'first mix the poison and use it'"
    # whitespace collapsed, control characters (a terminal colour code here) blanked, cut at 60 characters
    assert third == f"  line 3: {scores[2]:.3f}  'first mix the poison  [31m then use the weapon and steal the'..."
    preset = runner.invoke(app, ["scan", str(source), "-o", "-", "--preset", "default", "--threshold", "0.9"])
    assert "scanned 3 records with preset default (threshold 0.9): " in preset.stderr


def test_help_fits_80_columns_and_says_what_the_defaults_are():
    for command in ([], ["scan"], ["eval"], ["train-detector"], ["train-detoxifier"], ["eval-detox"], ["hash"]):
        result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "80"}, terminal_width=80)
        assert result.exit_code == 0, result.output
        assert max(map(len, result.stdout.splitlines())) <= 80, result.stdout
        assert "\u2026" not in result.stdout  # nothing cut short with an ellipsis
    raw = runner.invoke(app, ["scan", "--help"], env={"COLUMNS": "80"}, terminal_width=80).stdout
    assert "stops the run before any model loads" in raw  # paragraphs rewrapped, no stray line breaks
    scan_help = " ".join(raw.split())
    assert "--threshold <float> Flag answers whose harm score (0 to 1) is at or above this." in scan_help
    assert "Default: the config's or preset's (0.7096 for `default`)" in scan_help
    assert "--batch-size <int range> Inputs (answer windows) per detector forward pass." in scan_help


def test_version():
    from importlib.metadata import version

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout == f"mllm-protector {version('mllm-protector')}\n"


@pytest.mark.parametrize("command", ["train-detector", "train-detoxifier"])
def test_training_commands_share_option_names(command):
    text = runner.invoke(app, [command, "--help"]).stdout
    assert "-o, --output" in text
    assert "--lora-target NAME" in text
    assert "--out " not in text
    assert "--lora-targets" not in text


def test_a_bad_device_or_threshold_reads_the_same_from_the_cli_and_python(tmp_path: Path, config_file: Path):
    source = write_lines(tmp_path / "in.jsonl", json.dumps(BENIGN))
    device = "must be one of auto, cpu, cuda, cuda:N (N a GPU index, e.g. cuda:1) or mps (got 'gpu')"
    for command in (["scan", str(source), "-o", "-"], ["eval", str(source)]):
        result = runner.invoke(app, [*command, "--config", str(config_file), "--device", "gpu"])
        assert result.exit_code == 2
        assert result.stderr == f"error: --device: {device}\n"
    result = runner.invoke(app, ["train-detector", str(source), "-o", str(tmp_path / "d"), "--device", "gpu"])
    assert result.stderr == f"error: --device: {device}\n"
    with pytest.raises(ConfigError) as caught:
        ProtectorConfig.from_dict({"preset": "default", "detector": {"model": {"device": "gpu"}}})
    assert f"detector.model.device: {device}" in str(caught.value)

    result = runner.invoke(app, ["scan", str(source), "-o", "-", "--config", str(config_file), "--threshold", "2"])
    assert result.exit_code == 2
    assert result.stderr == "error: --threshold: must be a number within [0, 1] (got 2.0)\n"
    for build in (lambda: Protector(threshold=2), lambda: ProtectorConfig.from_preset("default", threshold=2)):
        with pytest.raises(ConfigError, match=re.escape("threshold: must be a number within [0, 1] (got 2)")):
            build()


def test_a_byte_order_mark_and_windows_line_ends_are_read(tmp_path: Path, config_file: Path):
    """Files saved by Windows editors: a UTF-8 BOM before line 1 and CRLF line ends."""
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"\xef\xbb\xbf" + json.dumps(HARMFUL).encode() + b"\r\n" + json.dumps(BENIGN).encode() + b"\r\n")
    result = runner.invoke(app, ["scan", str(source), "-o", "-", "--config", str(config_file)])
    assert result.exit_code == 0, result.output
    first, second = result.stdout.splitlines()
    assert first.startswith(json.dumps(HARMFUL)[:-1])  # the record as given, without the mark
    assert [json.loads(first)["flagged"], json.loads(second)["flagged"]] == [True, False]
    labelled = tmp_path / "dev.jsonl"
    labelled.write_bytes(b"\xef\xbb\xbf" + json.dumps({"answer": "first mix the poison", "harmful": True}).encode())
    result = runner.invoke(app, ["eval", str(labelled), "--config", str(config_file), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["overall"]["tp"] == 1


def test_a_key_that_differs_only_in_case_is_suggested(tmp_path: Path, config_file: Path):
    source = write_lines(tmp_path / "in.jsonl", json.dumps({"Question": "q", "Answer": "here is some cake"}))
    result = runner.invoke(app, ["scan", str(source), "-o", "-", "--config", str(config_file)])
    assert "name it: --question-key Question --answer-key Answer" in result.stderr
