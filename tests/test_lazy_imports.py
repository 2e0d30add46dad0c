"""Importing the packages loads neither torch nor transformers: only loading a model or starting a training run
does (apps that use a remote detector, the CLI's config checks and `--help` start without them)."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "package", ["protector_models", "protector_models.cli", "langchain_mllm_protector", "llama_index_mllm_protector"]
)
def test_importing_a_package_loads_no_model_library(package: str):
    code = (
        f"import sys, {package}\n"
        "loaded = sorted(name for name in ('torch', 'transformers', 'peft') if name in sys.modules)\n"
        "print(','.join(loaded))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == ""


def test_the_classifier_detector_is_still_exported():
    import protector_models
    from protector_models.models import detector

    assert protector_models.ClassifierDetector is detector.ClassifierDetector
    with pytest.raises(AttributeError, match="no attribute 'NoSuchThing'"):
        _ = protector_models.NoSuchThing  # type: ignore[attr-defined]


def test_the_trainers_are_still_exported():
    from protector_models import training
    from protector_models.training import detector, detoxifier

    assert training.train_detector is detector.train_detector
    assert training.DetoxifierTrainingArgs is detoxifier.DetoxifierTrainingArgs
    assert detector.DetectorTrainingArgs is training.DetectorTrainingArgs


def test_the_guard_lm_detector_is_exported_on_first_use():
    import protector_models
    from protector_models.models.guard_lm import detector

    assert protector_models.GuardLMDetector is detector.GuardLMDetector
