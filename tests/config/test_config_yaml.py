"""Config YAML is read strictly: no aliases (no alias bombs), no duplicate keys, UTF-8 only, bounded in size and
depth; every problem is a ConfigError that names the file and, where there is one, the line."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from protector_models import ConfigError, ProtectorConfig
from protector_models.cli import app

# 450 bytes that expand to 9^9 (387 million) strings once validated, printed or dumped.
ALIAS_BOMB = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def write(tmp_path: Path, text: str | bytes, name: str = "protector.yaml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("where", ["model_kwargs", "threshold"])
def test_an_alias_bomb_is_refused_at_once(tmp_path: Path, where: str):
    key = "detector:\n  model:\n    source: x\n    model_kwargs:\n      bomb: *i\n" if where == "model_kwargs" else ""
    text = ALIAS_BOMB.replace("a: &a", "x-a: &a") + key + ("threshold: *i\n" if where == "threshold" else "")
    path = write(tmp_path, text)
    started = time.monotonic()
    with pytest.raises(ConfigError) as caught:
        ProtectorConfig.from_yaml(path)
    assert time.monotonic() - started < 1
    assert str(caught.value) == (
        f"{path} line 1: anchors and aliases (&name, *name) are not allowed in a config; write the value out in full"
    )


def test_scan_with_an_alias_bomb_config_fails_fast(tmp_path: Path):
    config = write(tmp_path, "preset: default\ndetector:\n  model:\n    model_kwargs: &k {a: 1}\n")
    data = tmp_path / "in.jsonl"
    data.write_text(json.dumps({"question": "q", "answer": "a"}) + "\n")
    result = CliRunner().invoke(app, ["scan", str(data), "-o", "-", "--config", str(config)])
    assert result.exit_code == 2
    assert "line 4: anchors and aliases (&name, *name) are not allowed" in result.stderr


def test_a_merge_key_is_refused(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"line 2: merge keys \(<<\) are not allowed"):
        ProtectorConfig.from_yaml(write(tmp_path, "preset: default\n<<: {threshold: 0.2}\n"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("preset: default\nthreshold: 0.2\nthreshold: 0.9\n", "line 3: duplicate key 'threshold' (first on line 2)"),
        (
            "detector:\n  model:\n    source: a\n    device: cpu\n    source: b\n",
            "line 5: duplicate key 'source' (first on line 3)",
        ),
    ],
)
def test_duplicate_keys_are_refused_with_their_lines(tmp_path: Path, text: str, expected: str):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        ProtectorConfig.from_yaml(path)
    assert str(caught.value) == f"{path} {expected}; each key may appear once"


def test_a_non_utf8_file_names_the_file_and_the_byte(tmp_path: Path):
    path = write(tmp_path, "preset: default\nrefusal_text: 'caf\xe9'\n".encode("latin-1"))
    with pytest.raises(ConfigError) as caught:
        ProtectorConfig.from_yaml(path)
    assert str(caught.value) == (
        f"{path} is not UTF-8 text: byte 0xe9 at line 2, column 19 cannot be decoded; save the file as UTF-8"
    )


def test_a_utf8_byte_order_mark_is_accepted(tmp_path: Path):
    path = write(tmp_path, "\ufeffpreset: default\nrefusal_text: café\n")
    assert ProtectorConfig.from_yaml(path).refusal_text == "café"


def test_a_file_over_one_mebibyte_is_refused(tmp_path: Path):
    path = write(tmp_path, "preset: default\n" + "#" * (1 << 20))
    with pytest.raises(ConfigError, match=r"is larger than 1024 KiB, too large for a config file"):
        ProtectorConfig.from_yaml(path)


def test_deep_nesting_is_a_config_error_not_a_recursion_error(tmp_path: Path):
    path = write(tmp_path, "detector: {model: {source: x, model_kwargs: {a: " + "[" * 5000 + "]" * 5000 + "}}}\n")
    with pytest.raises(ConfigError, match=r"line 1: nested more than 32 levels deep"):
        ProtectorConfig.from_yaml(path)


def test_an_integer_too_long_to_convert_is_a_config_error(tmp_path: Path):
    path = write(tmp_path, "preset: default\nthreshold: " + "9" * 5000 + "\n")
    with pytest.raises(ConfigError, match=r"line 2: a number of 5000 characters is too long"):
        ProtectorConfig.from_yaml(path)


def test_exponent_floats_read_as_numbers_and_such_strings_round_trip(tmp_path: Path):
    config = ProtectorConfig.from_yaml(write(tmp_path, "preset: default\nthreshold: 1e-3\nrefusal_text: 'x'\n"))
    assert config.threshold == 0.001
    tricky = ProtectorConfig.from_dict({"detector": {"model": {"source": "1e5"}}, "refusal_text": "2E-3"})
    assert ProtectorConfig.from_yaml(write(tmp_path, tricky.to_yaml(), "round.yaml")) == tricky


def test_the_langchain_settings_reader_reports_a_non_utf8_file_too(tmp_path: Path):
    from langchain_mllm_protector.settings import read_yaml

    path = write(tmp_path, "protector:\n  preset: default\n  refusal_text: 'caf\xe9'\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"is not UTF-8 text: byte 0xe9 at line 3, column 21"):
        read_yaml(path)
