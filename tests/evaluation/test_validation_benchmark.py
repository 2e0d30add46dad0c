"""`benchmarks/validation.py` measures a trained detector on the split its own training run held out."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from protector_models.config.schema import ProtectorConfig
from protector_models.testing import save_tiny_classifier, toy_examples

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def validation() -> ModuleType:
    spec = importlib.util.spec_from_file_location("validation_benchmark", ROOT / "benchmarks" / "validation.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_config(folder: Path, adapter: str) -> ProtectorConfig:
    config = folder / "protector.yaml"
    config.write_text(f"detector:\n  model:\n    source: some/base\n    adapter: {adapter}\nthreshold: 0.5\n")
    return ProtectorConfig.from_yaml(config)


def test_the_split_is_the_training_runs(validation: ModuleType, tmp_path: Path) -> None:
    adapter = tmp_path / "run"
    adapter.mkdir()
    (adapter / "training_args.json").write_text(json.dumps({"seed": 7, "val_fraction": 0.2, "epochs": 2}))
    assert validation.trained_split(write_config(tmp_path, str(adapter))) == {"seed": 7, "val_fraction": 0.2}


def test_an_adapter_beside_the_config_is_found(validation: ModuleType, tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "training_args.json").write_text(json.dumps({"seed": 3, "val_fraction": 0.1}))
    assert validation.trained_split(write_config(tmp_path, "run")) == {"seed": 3, "val_fraction": 0.1}


def test_no_training_record_means_the_defaults(validation: ModuleType, tmp_path: Path) -> None:
    assert validation.trained_split(write_config(tmp_path, "someone/hub-adapter")) == {}


def test_the_default_detector_names_its_own_split(validation: ModuleType) -> None:
    """The shipped default was trained with seed 1: measuring it on seed 0's split would count rows it saw."""
    assert validation.trained_split(ProtectorConfig.from_preset("default")) == {"seed": 1, "val_fraction": 0.1}


def test_a_whole_trained_model_names_its_split(validation: ModuleType, tmp_path: Path) -> None:
    """`--mode full` and `--mode head` save a whole model, with training_args.json beside it."""
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "training_args.json").write_text(json.dumps({"seed": 4, "val_fraction": 0.3}))
    config = ProtectorConfig.from_dict({"detector": {"model": {"source": str(tmp_path / "model")}}})
    assert validation.trained_split(config) == {"seed": 4, "val_fraction": 0.3}


def test_the_benchmark_splits_as_its_detector_was_trained(tmp_path: Path) -> None:
    """End to end on a tiny model: the training run's split by default, and a warning when told another."""
    model = save_tiny_classifier(tmp_path / "model")
    (model / "training_args.json").write_text(json.dumps({"seed": 5, "val_fraction": 0.5}))
    data = tmp_path / "data.jsonl"
    rows = [
        {"question": e.question, "answer": e.answer, "harmful": e.harmful, "source": e.source} for e in toy_examples(40)
    ]
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    config = tmp_path / "protector.yaml"
    config.write_text(f"detector:\n  model:\n    source: {model}\n")

    def run(*extra: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, str(ROOT / "benchmarks" / "validation.py"), str(data), "--config", str(config)]
        return subprocess.run([*command, *extra], capture_output=True, text=True, check=True)

    trained = run()
    assert json.loads(trained.stdout)["split"] == {"val_fraction": 0.5, "seed": 5}
    assert json.loads(trained.stdout)["pairs"] == 20
    assert "warning" not in trained.stderr
    other = run("--seed", "6")
    assert json.loads(other.stdout)["split"] == {"val_fraction": 0.5, "seed": 6}
    assert "trained with seed 5: this split holds rows it trained on" in other.stderr


def test_mismatched_rows_are_scored_and_weighed_as_one_more_source(tmp_path: Path) -> None:
    """`--mismatched`: rows built from the validation rows alone, as `train-detector --mismatch` weighs them."""
    from protector_models.data.labelled import LabelledPair
    from protector_models.training.detector import split_validation
    from protector_models.training.mismatching import validation_mismatched

    model = save_tiny_classifier(tmp_path / "model")
    long_harmful = [LabelledPair(f"bad question {i}", "mix the poison " * 12, True, "long") for i in range(10)]
    examples = toy_examples(40) + long_harmful
    data = tmp_path / "data.jsonl"
    rows = [{"question": e.question, "answer": e.answer, "harmful": e.harmful, "source": e.source} for e in examples]
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    config = tmp_path / "protector.yaml"
    config.write_text(f"detector:\n  model:\n    source: {model}\n")
    command = [sys.executable, str(ROOT / "benchmarks" / "validation.py"), str(data), "--config", str(config)]
    scores = tmp_path / "scores.json"
    command += ["--mismatched", "--scores", str(scores)]
    result = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
    _, held_out = split_validation(examples, 0.1, 0)
    expected = validation_mismatched(held_out)
    assert result["mismatched"]["n"] == len(expected) > 0
    written = json.loads(scores.read_text())  # every scored row, the mismatched ones as their own source
    assert written["labels"] == [e.harmful for e in held_out + expected]
    assert written["sources"] == [e.source for e in held_out + expected]
    assert len(written["scores"]) == len(held_out) + len(expected)
    assert set(result["with_mismatched"]) == {"mean_over_sources", "best_threshold", "mean_over_sources_at_best"}
    assert "spliced" not in result
