"""Turn what a user passes (a protector, a config, a YAML path, a preset name) into a :class:`Protector`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from llama_index.core.llms import LLM

from llama_index_mllm_protector.rewriter import LlamaIndexRewriter
from protector_models import ConfigError, Detector, Pair, Protector, ProtectorConfig, Rewriter
from protector_models.config import Action

ProtectorSource = Protector | ProtectorConfig | Mapping[str, Any] | str | Path | None
"""A protector, a config (object, mapping, YAML path or preset name), or None for the embedded default."""

_ACTIONS = ("pass", "refuse", "detoxify", "raise")


def build_protector(source: ProtectorSource = None, *, detoxify_llm: LLM | None = None) -> Protector:
    """A :class:`Protector` from ``source``; ``detoxify_llm`` makes a LlamaIndex LLM its rewriter."""
    if source is None:
        protector = Protector()
    elif isinstance(source, Protector):
        protector = source
    elif isinstance(source, (ProtectorConfig, Mapping, str, Path)):
        protector = Protector.from_config(source)
    else:
        raise ConfigError(
            f"protector must be a Protector, a ProtectorConfig, a config dict, a YAML path or a preset name; "
            f"got {type(source).__name__}"
        )
    if detoxify_llm is not None:
        protector = with_rewriter(protector, LlamaIndexRewriter(detoxify_llm))
    return protector


def with_rewriter(protector: Protector, rewriter: Rewriter) -> Protector:
    """A protector with the same detector (shared, loaded lazily) and policy, rewriting with ``rewriter``."""
    if not isinstance(rewriter, Rewriter):
        raise ConfigError(
            f"rewriter must have a rewrite(pairs) -> list[str] method; got {type(rewriter).__name__}"
        )
    rewired = Protector(
        detector=_SharedDetector(protector),
        rewriter=rewriter,
        threshold=protector.threshold,
        action=protector.action,
        refusal_text=protector.refusal_text,
        on_error=protector.on_error,
    )
    rewired.config = protector.config
    return rewired


def check_action(action: Action | None) -> Action | None:
    """Validate a per-guard override of the core action early, with the accepted values in the message."""
    if action is not None and action not in _ACTIONS:
        raise ConfigError(
            f"action must be one of {', '.join(_ACTIONS)} (or None to use the protector's); got {action!r}"
        )
    return action


def check_threshold(threshold: float | None) -> float | None:
    """Validate a per-guard threshold override early."""
    if threshold is not None and not (isinstance(threshold, (int, float)) and 0.0 <= threshold <= 1.0):
        raise ConfigError(
            f"threshold must be a number within [0, 1] (or None to use the protector's); got {threshold!r}"
        )
    return threshold


class _SharedDetector:
    """Scores with another protector's detector, loading it only when first needed."""

    def __init__(self, protector: Protector) -> None:
        self._protector = protector

    def score(self, pairs: Sequence[Pair]) -> list[float]:
        detector: Detector = self._protector.detector
        return detector.score(pairs)
