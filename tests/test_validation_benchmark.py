"""`benchmarks/validation.py` measures a trained detector on the split its own training run held out."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

from protector_models.config import ProtectorConfig

ROOT = Path(__file__).resolve().parents[1]


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
