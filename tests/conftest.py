"""Shared fixtures: tiny real models built once per test session, in a temporary folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never touch the network

from protector_models import Protector
from protector_models.models.guard_lm import LlamaGuard3
from protector_models.models.integrity import directory_pins
from protector_models.testing import (
    save_tiny_causal_lm,
    train_fixed_detoxifier,
    train_keyword_detector,
    train_tiny_llama_guard,
)

TINY_GUARD_CATEGORIES = [f"S{i}" for i in range(2, 15) if i != 10]
"""Left out of the tiny Llama Guard's prompt (it lists S1 and S10): shorter prompts, faster tests."""


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
def pinned_detector_config(detector_config: dict, keyword_detector_dir: Path) -> dict:
    """:func:`detector_config` with its files pinned, as ``serve`` (``require_pins``) takes it."""
    model = {**detector_config["detector"]["model"], "sha256": directory_pins(keyword_detector_dir)}
    return {"detector": {"model": model}}


@pytest.fixture
def protector(detector_config: dict) -> Protector:
    """A protector with the keyword detector, refusing flagged answers."""
    return Protector.from_config(detector_config)


@pytest.fixture(scope="session")
def fixed_detoxifier_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny causal LM fine-tuned to answer "I cannot help." to anything (full fine-tune, a few seconds)."""
    return train_fixed_detoxifier(tmp_path_factory.mktemp("fixed-detoxifier"))


@pytest.fixture(scope="session")
def tiny_llama_guard_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Llama in Llama Guard 3's format (S1 and S10 listed) taught to write the code S10 after ``unsafe``."""
    return train_tiny_llama_guard(tmp_path_factory.mktemp("tiny-llama-guard"), LlamaGuard3(TINY_GUARD_CATEGORIES))


@pytest.fixture
def guard_config(tiny_llama_guard_dir: Path) -> dict:
    """A protector config dict around the tiny Llama Guard (categories for every pair it scores 0.3 or more)."""
    model = {"source": str(tiny_llama_guard_dir), "max_length": 1024}
    detector = {
        "kind": "guard_lm",
        "format": "llama-guard-3",
        "model": model,
        "excluded_categories": TINY_GUARD_CATEGORIES,
        "category_threshold": 0.3,
    }
    return {"detector": detector, "threshold": 0.5}


@pytest.fixture
def cascade_config(detector_config: dict, guard_config: dict) -> dict:
    """The keyword classifier first; the pairs it scores within [0, 0.6] (its benign ones) go to the tiny Llama
    Guard, which names the category S10 for every pair it sees."""
    band = [0.0, 0.6]
    return {
        "detector": {
            "kind": "cascade",
            "first": detector_config["detector"],
            "second": guard_config["detector"],
            "band": band,
        }
    }
