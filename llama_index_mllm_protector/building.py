"""Turn what a user passes (a protector, a config, a YAML path, a preset name) into a :class:`Protector`."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from llama_index.core.llms import LLM

from llama_index_mllm_protector.rewriter import LlamaIndexRewriter
from protector_models import ConfigError, Protector, ProtectorConfig

ProtectorSource = Protector | ProtectorConfig | Mapping[str, Any] | str | Path | None
"""A protector, a config (object, mapping, YAML path or preset name), or None for the embedded default."""


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
        protector = protector.with_rewriter(LlamaIndexRewriter(detoxify_llm))
    return protector
