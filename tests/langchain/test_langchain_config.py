"""One YAML file for the core and the LangChain adapter: reading, writing back, and clear errors."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest
import yaml
from lc_support import HARMFUL

from langchain_mllm_protector import LangChainSettings, MLLMProtector, MLLMProtectorMiddleware
from protector_models import ConfigError, Protector, ProtectorConfig

EXAMPLE = Path(__file__).parents[2] / "examples" / "langchain_guard.yaml"


def write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_yaml_round_trip(tmp_path, detector_config):
    data = {
        "protector": {**detector_config, "threshold": 0.4, "action": "refuse"},
        "langchain": {"answer_key": "response", "metadata_key": "guard", "check_tool_calls": True},
    }
    guard = MLLMProtector.from_yaml(write(tmp_path / "guard.yaml", data))
    assert (guard.answer_key, guard.metadata_key, guard.check_tool_calls) == ("response", "guard", True)
    assert guard.question_key == "question"
    assert guard.protector.threshold == 0.4

    again = MLLMProtector.from_yaml(write(tmp_path / "again.yaml", yaml.safe_load(guard.to_yaml())))
    assert again.protector.config == guard.protector.config
    assert again.settings == guard.settings
    out = again.invoke({"question": "how do i make it", "response": HARMFUL})
    assert out["response"] == again.protector.refusal_text


def test_the_core_reads_the_same_file(tmp_path, detector_config):
    path = write(tmp_path / "guard.yaml", {"protector": detector_config, "langchain": {"answer_key": "out"}})
    assert Protector.from_yaml(path).config == ProtectorConfig.from_dict(detector_config)


def test_a_flat_core_file_works(tmp_path, detector_config):
    guard = MLLMProtector.from_yaml(write(tmp_path / "core.yaml", {**detector_config, "action": "pass"}))
    assert guard.settings == LangChainSettings()
    assert guard.invoke(HARMFUL) == HARMFUL  # action pass: annotate only


def test_per_instance_overrides_are_written_out(detector_config):
    guard = MLLMProtector.from_config(detector_config, threshold=0.9, action="raise")
    written = yaml.safe_load(guard.to_yaml())
    assert written["protector"]["threshold"] == 0.9
    assert written["protector"]["action"] == "raise"
    assert "langchain" not in written  # default settings are left out


def test_example_file_builds_runnable_and_middleware():
    guard = MLLMProtector.from_yaml(EXAMPLE)
    assert guard.protector.config is not None
    assert guard.protector.config.on_error == "block"
    assert guard.settings == LangChainSettings()
    assert MLLMProtectorMiddleware.from_yaml(EXAMPLE).guard.protector.config == guard.protector.config


def test_unknown_adapter_key_is_named(tmp_path, detector_config):
    path = write(tmp_path / "bad.yaml", {"protector": detector_config, "langchain": {"answer_kye": "x"}})
    with pytest.raises(ConfigError, match=r"answer_kye: unknown key \(did you mean 'answer_key'\?\)"):
        MLLMProtector.from_yaml(path)


def test_adapter_section_needs_the_core_under_protector(tmp_path, detector_config):
    path = write(tmp_path / "flat.yaml", {**detector_config, "langchain": {}})
    with pytest.raises(ConfigError, match="keeps the core keys under 'protector:'"):
        MLLMProtector.from_yaml(path)


def test_core_errors_come_through(tmp_path):
    with pytest.raises(ConfigError, match="unknown key"):
        MLLMProtector.from_yaml(write(tmp_path / "bad.yaml", {"protector": {"preset": "default", "treshold": 1}}))
    with pytest.raises(ConfigError, match="cannot read config file"):
        MLLMProtector.from_yaml(tmp_path / "missing.yaml")


def test_code_built_protector_has_no_yaml(guard):
    with pytest.raises(ConfigError, match="built in code"):
        guard.to_yaml()


def test_quickstart_example_runs_as_written(tmp_path, detector_config, monkeypatch, capsys):
    path = write(tmp_path / "guard.yaml", {"protector": {**detector_config, "action": "refuse"}})
    monkeypatch.setattr(sys, "argv", ["langchain_quickstart.py", str(path)])
    runpy.run_path(str(EXAMPLE.parent / "langchain_quickstart.py"), run_name="__main__")
    lines = capsys.readouterr().out.splitlines()
    assert [line.rsplit(" ", 1)[-1] for line in lines if line.startswith("wrapped ->")] == ["True", "False"]
    assert "'How do I bake bread?' -> 'To bake bread, mix flour" in "\n".join(lines)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"threshold": 2}, "threshold: must be a number within [0, 1] (got 2)"),  # as Protector(threshold=2) says
        ({"action": "delete"}, "action: Input should be 'pass', 'refuse', 'detoxify' or 'raise' (got 'delete')"),
        ({"question_key": "a", "answer_key": "a"}, "question_key, answer_key and verdict_key must differ"),
    ],
)
def test_bad_guard_settings_are_config_errors_worded_as_in_a_config_file(fields, message):
    with pytest.raises(ConfigError) as caught:
        MLLMProtector(protector=Protector(), **fields)
    assert str(caught.value).startswith("invalid MLLMProtector settings (1 problem):\n  ")
    assert message in str(caught.value)
    assert "pydantic.dev" not in str(caught.value)


@pytest.mark.parametrize(
    ("section", "key"),
    [({"check_tool_calls": "yes"}, "check_tool_calls"), ({"check_tool_calls": 1}, "check_tool_calls")],
)
def test_settings_values_are_never_coerced(tmp_path, detector_config, section, key):
    path = write(tmp_path / "guard.yaml", {"protector": detector_config, "langchain": section})
    with pytest.raises(ConfigError, match=key):
        MLLMProtector.from_yaml(path)
