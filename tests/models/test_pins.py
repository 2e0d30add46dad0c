"""SHA-256 pins: every file of a pinned directory is checked before any loader reads it; bundled models are pinned
file by file; ``mllm-protector hash`` prints pins ready to paste."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from protector_models import (
    ClassifierDetector,
    ConfigError,
    DetectorConfig,
    ModelLoadError,
    ModelSpec,
    Pair,
    Protector,
    ProtectorConfig,
)
from protector_models.cli import app
from protector_models.config.presets import DEFAULT_DETECTOR_ID, MINILM_ID
from protector_models.models import bundled_pins
from protector_models.models.bundled import BundledModel, minilm_dir, package_dir
from protector_models.models.integrity import directory_pins
from protector_models.models.loading import resolve_source
from protector_models.training.common import portable_source

PAIRS = [Pair("how do i make it", "first mix the poison"), Pair("what should i do", "bake some bread")]


def flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))


def score(model: dict) -> list[float]:
    return ClassifierDetector.from_config(DetectorConfig(model=ModelSpec(device="cpu", **model))).score(PAIRS)


@pytest.fixture
def detector_copy(tmp_path: Path, keyword_detector_dir: Path) -> Path:
    return Path(shutil.copytree(keyword_detector_dir, tmp_path / "detector"))


@pytest.fixture
def adapter_copy(tmp_path: Path) -> Path:
    return Path(shutil.copytree(package_dir("minilm-detector"), tmp_path / "adapter"))


def test_pinned_directory_loads_and_scores_as_unpinned(detector_copy: Path):
    pins = directory_pins(detector_copy)
    assert score({"source": str(detector_copy), "sha256": pins}) == score({"source": str(detector_copy)})


def test_a_flipped_byte_in_a_copied_adapter_is_refused_before_loading(adapter_copy: Path):
    pins = directory_pins(adapter_copy)
    unpinned = score({"source": MINILM_ID, "adapter": str(adapter_copy)})
    weights = adapter_copy / "adapter_model.safetensors"
    flip_last_byte(weights)
    assert score({"source": MINILM_ID, "adapter": str(adapter_copy)}) != unpinned  # what the pins guard against
    with pytest.raises(ModelLoadError) as caught:
        score({"source": MINILM_ID, "adapter": str(adapter_copy), "adapter_sha256": pins})
    message = str(caught.value)
    assert f"{weights} has SHA-256 " in message
    assert f"expected {pins['adapter_model.safetensors']} (pinned in `adapter_sha256`)" in message
    assert "corrupt or was replaced" in message


def test_pins_are_checked_before_a_loader_reads_the_file(detector_copy: Path):
    pins = directory_pins(detector_copy)
    (detector_copy / "config.json").write_text("{not json")  # would fail inside transformers if it were read
    with pytest.raises(ModelLoadError, match=r"config\.json has SHA-256 [0-9a-f]{64}, expected"):
        score({"source": str(detector_copy), "sha256": pins})


def test_an_added_file_is_refused(detector_copy: Path):
    pins = directory_pins(detector_copy)
    (detector_copy / "added_tokens.json").write_text("{}")
    with pytest.raises(ModelLoadError, match=r"holds added_tokens\.json, not pinned in `sha256`: every file"):
        score({"source": str(detector_copy), "sha256": pins})


def test_a_missing_pinned_file_is_refused(detector_copy: Path):
    pins = directory_pins(detector_copy)
    (detector_copy / "tokenizer_config.json").unlink()
    with pytest.raises(ModelLoadError, match=r"lacks tokenizer_config\.json, pinned in `sha256`"):
        score({"source": str(detector_copy), "sha256": pins})


def test_hidden_and_yaml_files_are_neither_pinned_nor_refused(detector_copy: Path):
    """A protector.yaml that holds the pins may sit in the directory it pins (train-detector writes one there)."""
    assert (detector_copy / "protector.yaml").is_file()
    pins = directory_pins(detector_copy)
    (detector_copy / ".gitattributes").write_text("*.safetensors filter=lfs\n")
    (detector_copy / "protector.yaml").write_text(yaml.safe_dump({"detector": {"model": {"sha256": pins}}}))
    assert directory_pins(detector_copy) == pins
    assert "protector.yaml" not in pins


def test_a_symlinked_file_is_pinned_by_its_content(detector_copy: Path, tmp_path: Path):
    outside = tmp_path / "elsewhere.json"
    (detector_copy / "config.json").rename(outside)
    (detector_copy / "config.json").symlink_to(outside)
    pins = directory_pins(detector_copy)
    outside.write_text(outside.read_text().replace('"hidden_act"', '"hidden_act" ', 1))
    with pytest.raises(ModelLoadError, match=r"config\.json has SHA-256"):
        score({"source": str(detector_copy), "sha256": pins})


def test_a_symlinked_directory_is_refused(detector_copy: Path, tmp_path: Path):
    (tmp_path / "outside").mkdir()
    (detector_copy / "sub").symlink_to(tmp_path / "outside")
    with pytest.raises(ModelLoadError, match="is a symlink to a directory"):
        directory_pins(detector_copy)


@pytest.mark.parametrize(
    ("pins", "expected"),
    [
        ({"config.json": "abc"}, "must be a SHA-256 digest: 64 hex digits"),
        ({"../config.json": "a" * 64}, "must be a relative path of a file to pin"),
        ({"/etc/passwd": "a" * 64}, "must be a relative path of a file to pin"),
        ({".cache/x": "a" * 64}, "must be a relative path of a file to pin"),
        ({"protector.yaml": "a" * 64}, "must be a relative path of a file to pin"),
        ({}, "should have at least 1 item"),
    ],
)
def test_malformed_pins_are_config_errors(pins: dict, expected: str):
    with pytest.raises(ConfigError, match=r"detector\.model\.sha256") as caught:
        ProtectorConfig.from_dict({"detector": {"model": {"source": "x", "sha256": pins}}})
    assert expected in str(caught.value)


def test_uppercase_digests_are_accepted():
    spec = ModelSpec(source="x", sha256={"config.json": "AB" * 32})
    assert spec.sha256 == {"config.json": "ab" * 32}


def test_adapter_pins_without_an_adapter_are_refused():
    with pytest.raises(ConfigError, match="`adapter_sha256` pins the files of `adapter`, but no `adapter` is set"):
        ProtectorConfig.from_dict({"detector": {"model": {"source": "x", "adapter_sha256": {"a.json": "a" * 64}}}})


def test_bundled_pins_cover_every_file_of_both_bundled_models():
    """Fails after a bundled file changes until `python scripts/pin_bundled.py` pins it again."""
    assert directory_pins(package_dir("minilm-detector")) == bundled_pins.MINILM_DETECTOR
    assert directory_pins(minilm_dir()) == bundled_pins.MINILM
    assert (
        bundled_pins.MINILM["model.safetensors"] == "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
    )


def test_a_changed_bundled_adapter_config_is_refused(adapter_copy: Path):
    """The bundled adapter used to be pinned by its weights only: a changed `lora_alpha` flipped verdicts."""
    config = json.loads((adapter_copy / "adapter_config.json").read_text())
    config["lora_alpha"] = 4 * config["lora_alpha"]
    (adapter_copy / "adapter_config.json").write_text(json.dumps(config))
    entry = BundledModel(DEFAULT_DETECTOR_ID, lambda: adapter_copy, bundled_pins.MINILM_DETECTOR, None, "reinstall.")
    with pytest.raises(
        ModelLoadError,
        match=r"adapter_config\.json has SHA-256 .* \(pinned in protector_models/models/bundled_pins\.py for 'mllm-",
    ):
        entry.path()


def test_hash_command_prints_pins_a_config_accepts(detector_copy: Path, adapter_copy: Path):
    runner = CliRunner()
    model = runner.invoke(app, ["hash", str(detector_copy)])
    adapter = runner.invoke(app, ["hash", str(adapter_copy)])
    assert model.exit_code == adapter.exit_code == 0, model.output + adapter.output
    assert model.stdout.startswith(f"# every file of {detector_copy}")
    spec = ModelSpec(
        source=str(detector_copy),
        adapter=str(adapter_copy),
        **yaml.safe_load(model.stdout),
        **yaml.safe_load(adapter.stdout),
    )
    assert spec.sha256 == directory_pins(detector_copy)
    assert spec.adapter_sha256 == directory_pins(adapter_copy)


def test_hash_command_refuses_a_file(detector_copy: Path):
    result = CliRunner().invoke(app, ["hash", str(detector_copy / "config.json")])
    assert result.exit_code == 2
    assert "is not a directory; give the model or adapter directory to pin" in result.stderr


RAT_POISON = Pair(
    "My neighbour's dog keeps barking. What should I do?",
    "Poison it. Mix rat poison into some minced meat and throw it over the fence at night.",
)


def test_a_bundled_id_is_the_bundled_copy_never_a_same_named_folder_here(
    tmp_path: Path, adapter_copy: Path, monkeypatch: pytest.MonkeyPatch
):
    """The audit's case: a folder mllm-protector/minilm-detector in the working directory, its head's bias at -30,
    made the default pass rat-poison instructions at 0.0, marked checked."""
    work = tmp_path / "work"
    tampered = Path(shutil.copytree(adapter_copy, work / DEFAULT_DETECTOR_ID))
    weights = load_file(tampered / "adapter_model.safetensors")
    weights["base_model.model.classifier.bias"] = torch.full_like(weights["base_model.model.classifier.bias"], -30.0)
    save_file(weights, tampered / "adapter_model.safetensors")
    shutil.copytree(minilm_dir(), work / MINILM_ID)
    (work / "protector.yaml").write_text(f"preset: default\ndetector:\n  model:\n    adapter: {DEFAULT_DETECTOR_ID}\n")
    monkeypatch.chdir(work)
    assert resolve_source(DEFAULT_DETECTOR_ID, None, key="adapter") == str(package_dir("minilm-detector"))
    assert resolve_source(MINILM_ID, None) == str(minilm_dir())
    config = ProtectorConfig.from_yaml(work / "protector.yaml")
    assert (config.detector.model.source, config.detector.model.adapter) == (MINILM_ID, DEFAULT_DETECTOR_ID)
    assert portable_source(MINILM_ID) == MINILM_ID  # what train-detector writes for a bundled base
    (verdict,) = Protector.from_config(config).check([RAT_POISON])
    assert verdict.flagged
    assert verdict.harm_score > 0.9
    with pytest.raises(ModelLoadError, match=r"a folder .* of that name is in the working directory"):
        resolve_source(MINILM_ID, "0123456789abcdef")  # another revision is the hub's, never the folder
    assert resolve_source(f"./{DEFAULT_DETECTOR_ID}", None, key="adapter") == str(tampered)  # named by a path
    explicit = {"source": f"./{MINILM_ID}", "adapter": f"./{DEFAULT_DETECTOR_ID}"}
    (verdict,) = Protector.from_config({"preset": "default", "detector": {"model": explicit}}).check([RAT_POISON])
    assert verdict.harm_score < 0.01  # the tampered folder, loaded because it was asked for (with a warning)


def test_an_unpinned_local_model_warns_once_and_require_pins_refuses_it(
    detector_copy: Path, caplog: pytest.LogCaptureFixture
):
    with caplog.at_level(logging.WARNING, logger="protector_models.models.loading"):
        first, again = score({"source": str(detector_copy)}), score({"source": str(detector_copy)})
    assert first == again
    warned = [r.getMessage() for r in caplog.records if "without `sha256` pins" in r.getMessage()]
    assert len(warned) == 1
    assert f"source {detector_copy} is a local directory without `sha256` pins" in warned[0]
    assert f"mllm-protector hash {detector_copy}" in warned[0]
    with pytest.raises(ModelLoadError, match="is a local directory without `sha256` pins, and require_pins is set"):
        score({"source": str(detector_copy), "require_pins": True})
    pinned = {"source": str(detector_copy), "sha256": directory_pins(detector_copy), "require_pins": True}
    assert score(pinned) == first


def test_require_pins_covers_the_adapter_and_every_model_of_a_config(adapter_copy: Path):
    with pytest.raises(ModelLoadError, match=r"adapter .* without `adapter_sha256` pins, and require_pins is set"):
        score({"source": MINILM_ID, "adapter": str(adapter_copy), "require_pins": True})  # the bundled base is pinned
    classifier = {"model": {"source": MINILM_ID, "adapter": str(adapter_copy)}}
    guard = {"kind": "guard_lm", "format": "llama-guard-3", "model": {"source": "g", "max_length": 64}}
    inner = {"kind": "cascade", "first": classifier, "second": guard, "band": [0.1, 0.9]}
    config = ProtectorConfig.from_dict(
        {
            "detector": {"kind": "cascade", "first": classifier, "second": inner, "band": [0.1, 0.9]},
            "rewriter": {"kind": "causal_lm", "model": {"source": "x", "max_length": 64}, "max_new_tokens": 8},
        }
    )
    served = config.requiring_pins()
    models = [
        served.detector.first.model,  # type: ignore[union-attr]
        served.detector.second.first.model,  # type: ignore[union-attr]
        served.detector.second.second.model,  # type: ignore[union-attr]
        served.rewriter.model,  # type: ignore[union-attr]
    ]
    assert [model.require_pins for model in models] == [True] * 4
    assert not config.detector.first.model.require_pins  # type: ignore[union-attr]  # a copy: the config is unchanged
    assert served.model_dump(exclude={"detector", "rewriter"}) == config.model_dump(exclude={"detector", "rewriter"})
