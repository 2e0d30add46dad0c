"""Configuration: validation errors name the field path and what is allowed; YAML and presets round-trip."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from protector_models import ConfigError, ProtectorConfig, load_config
from protector_models.config.presets import GUARD_MODELS, PRESETS
from protector_models.config.schema import check_threshold

MINIMAL = {"detector": {"model": {"source": "some/model"}}}


def test_minimal_config_gets_documented_defaults():
    config = ProtectorConfig.from_dict(MINIMAL)
    assert (config.threshold, config.action, config.on_error) == (0.5, "detoxify", "raise")
    assert config.rewriter.kind == "refusal"
    assert (config.detector.model.device, config.detector.model.dtype) == ("auto", "auto")


def test_unknown_key_names_its_path_suggests_and_lists_allowed_keys():
    with pytest.raises(ConfigError) as caught:
        ProtectorConfig.from_dict({**MINIMAL, "thresold": 0.3})
    message = str(caught.value)
    assert "thresold: unknown key (did you mean 'threshold'?)" in message
    allowed = "action, batching, detector, on_error, refusal_text, rescore_rewrites, rewriter, streaming, threshold"
    assert f"allowed keys: {allowed}" in message


def test_unknown_nested_key_lists_the_nested_models_keys():
    with pytest.raises(ConfigError) as caught:
        ProtectorConfig.from_dict({"detector": {"model": {"source": "x", "dtpye": "float32"}}})
    assert "detector.model.dtpye: unknown key (did you mean 'dtype'?)" in str(caught.value)
    assert "trust_remote_code" in str(caught.value)


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("dtype", "fp8", "'auto', 'float32', 'bfloat16' or 'float16'"),
        (
            "device",
            "gpu",
            "device: must be one of auto, cpu, cuda, cuda:N (N a GPU index, e.g. cuda:1) or mps (got 'gpu')",
        ),
        ("max_length", 0, "max_length: must be an integer within (8, 131072] (got 0)"),
    ],
)
def test_bad_model_spec_values_name_field_and_allowed_values(field, value, expected):
    with pytest.raises(ConfigError) as caught:
        ProtectorConfig.from_dict({"detector": {"model": {"source": "x", field: value}}})
    assert expected in str(caught.value)
    assert f"detector.model.{field}" in str(caught.value)


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"threshold": 1.5}, "threshold: must be a number within [0, 1] (got 1.5)"),
        ({"threshold": -1}, "threshold: must be a number within [0, 1] (got -1)"),
        ({"action": "delete"}, "action: Input should be 'pass', 'refuse', 'detoxify' or 'raise'"),
        ({"on_error": "ignore"}, "on_error: Input should be 'raise', 'block' or 'pass'"),
        ({"rewriter": {"kind": "magic"}}, "rewriter: Input tag 'magic' found using 'kind' does not match"),
        ({"rewriter": {"kind": "causal_lm"}}, "rewriter.model: Field required"),
    ],
)
def test_bad_top_level_values(override, expected):
    with pytest.raises(ConfigError, match="invalid protector config") as caught:
        ProtectorConfig.from_dict({**MINIMAL, **override})
    assert expected in str(caught.value)


def test_unknown_key_inside_a_rewriter_variant_lists_that_variants_keys():
    with pytest.raises(ConfigError) as caught:
        ProtectorConfig.from_dict({**MINIMAL, "rewriter": {"kind": "causal_lm", "model": {"source": "x"}, "tokens": 5}})
    assert "rewriter.tokens: unknown key" in str(caught.value)
    assert "max_new_tokens" in str(caught.value)


def test_a_missing_section_is_named_without_echoing_its_parent():
    with pytest.raises(ConfigError) as caught:
        ProtectorConfig.from_dict({"threshold": 0.5})
    assert str(caught.value) == "invalid protector config (1 problem):\n  detector: Field required"


def test_config_must_be_a_mapping():
    with pytest.raises(ConfigError, match="must be a mapping, got list"):
        ProtectorConfig.from_dict([1, 2])  # type: ignore[arg-type]


def test_preset_with_overrides_merges_deeply():
    config = ProtectorConfig.from_dict(
        {"preset": "paper-7b", "threshold": 0.7, "detector": {"model": {"device": "cpu"}}}
    )
    assert config.threshold == 0.7
    assert config.detector.model.device == "cpu"
    assert config.detector.model.adapter == "renjiepi/protector_detector_7b_lora"  # kept from the preset
    assert config.detector.score_meaning == "safe"


def test_every_preset_validates():
    kinds = {name: ProtectorConfig.from_preset(name).detector.kind for name in PRESETS}
    assert {name for name, kind in kinds.items() if kind == "classifier"} == {
        "default",
        "paper-3b",
        "paper-7b",
        "paper-detoxifier",
    }
    assert {name for name, kind in kinds.items() if kind == "guard_lm"} == set(GUARD_MODELS)
    assert kinds["cascade-llama-guard-3-8b"] == "cascade"


def test_unknown_preset_lists_the_available_ones():
    with pytest.raises(ConfigError, match="unknown preset 'nope'; available presets: default, paper-3b"):
        ProtectorConfig.from_preset("nope")


def test_yaml_round_trip(tmp_path: Path):
    config = ProtectorConfig.from_preset("paper-detoxifier", threshold=0.25, on_error="block")
    path = tmp_path / "protector.yaml"
    path.write_text(config.to_yaml())
    assert ProtectorConfig.from_yaml(path) == config


def test_yaml_may_nest_the_config_under_one_protector_key(tmp_path: Path):
    path = tmp_path / "agent.yaml"
    path.write_text("protector:\n  preset: default\n  threshold: 0.8\n")
    assert ProtectorConfig.from_yaml(path).threshold == 0.8


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("detector: [unclosed", "is not valid YAML"),
        ("", "is empty"),
        ("!!python/object/apply:os.system ['echo hacked']", "is not valid YAML"),
    ],
)
def test_bad_yaml_files(tmp_path: Path, text: str, expected: str):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=expected):
        ProtectorConfig.from_yaml(path)


def test_yaml_error_names_the_file(tmp_path: Path):
    path = tmp_path / "typo.yaml"
    path.write_text("preset: default\nactoin: refuse\n")
    with pytest.raises(ConfigError, match=r"typo\.yaml: invalid protector config"):
        ProtectorConfig.from_yaml(path)


def test_missing_yaml_file_is_a_config_error(tmp_path: Path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        ProtectorConfig.from_yaml(tmp_path / "absent.yaml")


def test_load_config_dispatches_on_type(tmp_path: Path):
    path = tmp_path / "c.yml"
    path.write_text("preset: paper-3b\n")
    assert load_config(path).detector.model.source == "openlm-research/open_llama_3b_v2"
    assert load_config("default") == ProtectorConfig.from_preset("default")
    assert load_config(MINIMAL).detector.model.source == "some/model"


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"threshold": True}, "threshold: Input should be a valid number (got True)"),
        ({"threshold": "0.5"}, "threshold: Input should be a valid number (got '0.5')"),
        ({"threshold": float("nan")}, "threshold: Input should be a finite number (got nan)"),
        ({"threshold": float("inf")}, "threshold: Input should be a finite number (got inf)"),
        ({"rescore_rewrites": "no"}, "rescore_rewrites: Input should be a valid boolean (got 'no')"),
        ({"detector": {"model": {"source": "x", "trust_remote_code": "yes"}}}, "trust_remote_code: Input should be"),
        ({"detector": {"model": {"source": "x", "trust_remote_code": 1}}}, "trust_remote_code: Input should be"),
        ({"detector": {"model": {"source": "x", "max_length": 64.0}}}, "max_length: Input should be a valid integer"),
        ({"detector": {"model": {"source": "x", "max_length": True}}}, "max_length: Input should be a valid integer"),
        ({"detector": {"model": {"source": "x"}, "batch_size": True}}, "batch_size: Input should be a valid integer"),
        ({"detector": {"model": {"source": "x"}, "batch_size": "8"}}, "batch_size: Input should be a valid integer"),
    ],
)
def test_values_are_never_coerced(override: dict, expected: str):
    with pytest.raises(ConfigError) as caught:
        ProtectorConfig.from_dict({**MINIMAL, **override})
    assert expected in str(caught.value)


def test_an_integer_is_still_a_number():
    assert ProtectorConfig.from_dict({**MINIMAL, "threshold": 1}).threshold == 1.0


@pytest.mark.parametrize("preset", [["default"], {"name": "default"}, 3])
def test_preset_must_be_a_name(preset: object):
    with pytest.raises(ConfigError, match=r"preset must be a name, got \w+ .*; available presets: default, paper-3b"):
        ProtectorConfig.from_dict({"preset": preset})


def test_error_messages_stay_short_whatever_the_value():
    shared: list = ["lol"] * 9
    for _ in range(8):
        shared = [shared] * 9  # 9^9 strings when expanded; a few hundred objects as built
    started = time.monotonic()
    with pytest.raises(ConfigError) as caught:
        ProtectorConfig.from_dict({**MINIMAL, "threshold": shared, "x" * 100_000: 1, "refusal_text": 10**5000})
    assert time.monotonic() - started < 1
    assert len(str(caught.value)) < 1500
    assert "refusal_text: Input should be a valid string (got <an integer of about 5001 digits>)" in str(caught.value)


def test_threshold_override_errors_stay_short():
    with pytest.raises(ConfigError) as caught:
        check_threshold("9" * 100_000)  # type: ignore[arg-type]
    assert len(str(caught.value)) < 400


@pytest.mark.parametrize(
    ("model_kwargs", "key"),
    [
        ({"attn_implementation": "kernels-community/flash-attn2"}, "attn_implementation"),
        ({"attn_implementation": "someone/kernel", "allow_all_kernels": True}, "attn_implementation"),
        ({"allow_all_kernels": True}, "allow_all_kernels"),
        ({"use_kernels": True}, "use_kernels"),
        ({"kernel_config": {"kernel_mapping": {}}}, "kernel_config"),
        ({"experts_implementation": "someone/moe"}, "experts_implementation"),
    ],
)
def test_hub_kernels_are_refused_unless_remote_code_is_trusted(model_kwargs: dict, key: str):
    model = {"source": "x", "model_kwargs": model_kwargs}
    with pytest.raises(
        ConfigError, match=rf"model_kwargs\.{key}: .* loads a compiled kernel from the Hugging Face hub"
    ):
        ProtectorConfig.from_dict({"detector": {"model": model}})
    trusted = ProtectorConfig.from_dict({"detector": {"model": {**model, "trust_remote_code": True}}})
    assert trusted.detector.model.model_kwargs == model_kwargs
    plain = {"attn_implementation": "sdpa", "use_kernels": False}
    assert ProtectorConfig.from_dict({"detector": {"model": {"source": "x", "model_kwargs": plain}}})


@pytest.mark.parametrize("key", ["trust_remote_code", "revision", "dtype", "torch_dtype", "use_safetensors"])
def test_loader_options_cannot_hide_in_model_kwargs(key: str):
    with pytest.raises(ConfigError, match=rf"detector\.model\.model_kwargs: '{key}' is not allowed here"):
        ProtectorConfig.from_dict({"detector": {"model": {"source": "x", "model_kwargs": {key: True}}}})


@pytest.mark.parametrize("source", ["models/a\x00b", "models/a\nb"])
def test_a_source_with_control_characters_is_refused(source: str):
    with pytest.raises(ConfigError, match=r"detector\.model\.source: must be one line of printable text"):
        ProtectorConfig.from_dict({"detector": {"model": {"source": source}}})


def test_a_rewrite_longer_than_the_models_window_is_a_config_error():
    rewriter = {"kind": "causal_lm", "model": {"source": "x", "max_length": 512}, "max_new_tokens": 10**12}
    with pytest.raises(ConfigError, match=r"rewriter: max_new_tokens \(10+\) must be below"):
        ProtectorConfig.from_dict({**MINIMAL, "rewriter": rewriter})


def test_an_unknown_preset_name_is_shown_cut_short():
    with pytest.raises(ConfigError, match=r"unknown preset 'xxx.*'; available presets: default") as caught:
        load_config("x" * 100_000)
    assert len(str(caught.value)) < 250 + len(", ".join(PRESETS))


def test_relative_model_paths_in_a_yaml_file_are_read_beside_the_file(
    tmp_path: Path, keyword_detector_dir, monkeypatch
):
    import shutil

    from protector_models import Protector

    folder = tmp_path / "deploy"
    shutil.copytree(keyword_detector_dir, folder / "models" / "detector")
    (folder / "protector.yaml").write_text("detector:\n  model:\n    source: models/detector\n    max_length: 64\n")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    config = ProtectorConfig.from_yaml("../deploy/protector.yaml")
    assert config.detector.model.source == str(folder.absolute() / "models" / "detector")
    (result,) = Protector.from_config(config).check([("how do i make it", "first mix the poison and use it")])
    assert result.flagged
    # the same file under a framework's `protector:` key, and a langchain-style file, resolve the same way
    (folder / "app.yaml").write_text("protector:\n  detector:\n    model: {source: ./models/detector}\n")
    assert ProtectorConfig.from_yaml(folder / "app.yaml").detector.model.source == config.detector.model.source


@pytest.mark.parametrize("source", ["org/model", "models/nowhere", "sentence-transformers/all-MiniLM-L6-v2"])
def test_a_relative_source_that_is_not_beside_the_file_is_left_as_written(tmp_path: Path, source: str):
    (tmp_path / "protector.yaml").write_text(f"detector:\n  model: {{source: {source}, adapter: {source}}}\n")
    model = ProtectorConfig.from_yaml(tmp_path / "protector.yaml").detector.model
    assert (model.source, model.adapter) == (source, source)  # a hub id, or a path relative to the working dir


def test_a_remote_detector_needs_a_threshold_of_its_own(tmp_path: Path):
    """The service's threshold never reaches the caller; the schema's 0.5 would silently stand in for it."""
    remote = {"kind": "remote", "url": "http://127.0.0.1:8000"}
    with pytest.raises(ConfigError, match=r"threshold: required with a remote detector .* preset's is 0\.7096"):
        ProtectorConfig.from_dict({"detector": remote})
    assert ProtectorConfig.from_dict({"detector": remote, "threshold": 0.6}).threshold == 0.6
    from_preset = ProtectorConfig.from_dict({"preset": "default", "detector": remote})
    assert from_preset.threshold == PRESETS["default"]["threshold"]

    from protector_models.cli.options import build_config

    path = tmp_path / "remote.yaml"
    path.write_text("detector: {kind: remote, url: 'http://127.0.0.1:8000'}\n")
    with pytest.raises(ConfigError, match=r"remote\.yaml: threshold: required"):
        build_config(path, None)
    assert build_config(path, None, threshold=0.65).threshold == 0.65  # --threshold counts


@pytest.mark.parametrize(
    "detector",
    [
        {"model": {"source": "/models/x"}},
        {"kind": "guard_lm", "format": "llama-guard-3", "model": {"source": "/models/x"}},
    ],
)
def test_a_stride_longer_than_the_window_is_refused(detector: dict):
    with pytest.raises(ConfigError, match=r"window_stride \(32\) must not exceed window_tokens \(16\)"):
        ProtectorConfig.from_dict({"detector": {**detector, "window_tokens": 16, "window_stride": 32}})
