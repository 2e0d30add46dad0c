"""Fixtures for the LangChain adapter: the tiny keyword detector, wrapped to record what it was given."""

from __future__ import annotations

from pathlib import Path

import pytest
from lc_support import RecordingDetector

from langchain_mllm_protector import MLLMProtector
from protector_models import ClassifierDetector, DetectorConfig, ModelSpec, Protector


@pytest.fixture(scope="session")
def keyword_detector(keyword_detector_dir: Path) -> ClassifierDetector:
    """The tiny trained detector, loaded once."""
    return ClassifierDetector.from_config(
        DetectorConfig(model=ModelSpec(source=str(keyword_detector_dir), max_length=64))
    )


@pytest.fixture
def detector(keyword_detector: ClassifierDetector) -> RecordingDetector:
    return RecordingDetector(keyword_detector)


@pytest.fixture
def guard(detector: RecordingDetector) -> MLLMProtector:
    """A guard that refuses flagged answers."""
    return MLLMProtector(protector=Protector(detector=detector, action="refuse"))


@pytest.fixture
def refusal(guard: MLLMProtector) -> str:
    return guard.protector.refusal_text
