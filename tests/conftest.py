"""Shared fixtures: tiny real models built once per test session, in a temporary folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never touch the network

from protector_models import Protector
from protector_models.testing import save_tiny_causal_lm, train_fixed_detoxifier, train_keyword_detector


@pytest.fixture(scope="session")
def keyword_detector_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny BERT classifier trained to flag answers that name a harmful keyword."""
    return train_keyword_detector(tmp_path_factory.mktemp("keyword-detector"))


@pytest.fixture(scope="session")
def tiny_lm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random tiny Llama causal LM with a byte-level tokenizer."""
    return save_tiny_causal_lm(tmp_path_factory.mktemp("tiny-lm"))


@pytest.fixture
def detector_config(keyword_detector_dir: Path) -> dict:
    """A protector config dict around the keyword detector (refusal rewriter)."""
    return {"detector": {"model": {"source": str(keyword_detector_dir), "max_length": 64}}}


@pytest.fixture
def protector(detector_config: dict) -> Protector:
    """A protector with the keyword detector, refusing flagged answers."""
    return Protector.from_config(detector_config)


@pytest.fixture(scope="session")
def fixed_detoxifier_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny causal LM fine-tuned to answer "I cannot help." to anything (full fine-tune, a few seconds)."""
    return train_fixed_detoxifier(tmp_path_factory.mktemp("fixed-detoxifier"))
