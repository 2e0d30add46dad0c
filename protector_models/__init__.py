"""mllm-protector core: harm detection and conditional rewriting of (question, answer) pairs.

>>> from protector_models import Protector
>>> Protector().protect([("How do I bake bread?", "Mix flour, water, salt and yeast...")])[0].output
'Mix flour, water, salt and yeast...'
"""

from typing import TYPE_CHECKING

from protector_models.config.presets import PRESETS
from protector_models.config.schema import (
    BatchingConfig,
    CascadeConfig,
    CausalLMRewriterConfig,
    DetectorConfig,
    GuardLMConfig,
    ModelSpec,
    ProtectorConfig,
    RefusalRewriterConfig,
    RemoteDetectorConfig,
    StreamingConfig,
    load_config,
)
from protector_models.detox.rewriters import CausalLMRewriter, RefusalRewriter, Rewriter
from protector_models.errors import (
    ConfigError,
    HarmfulContentError,
    InvalidInputError,
    ModelLoadError,
    ModelRuntimeError,
    ProtectorError,
)
from protector_models.interfaces import Detector, Judgement
from protector_models.models.batcher import MicroBatcher
from protector_models.models.cascade import CascadeDetector
from protector_models.models.remote import RemoteDetector
from protector_models.pairs import Pair, as_pairs
from protector_models.protector import Protector
from protector_models.results import Result, Verdict
from protector_models.streaming import StreamOutcome, VerifiedStream

if TYPE_CHECKING:
    from protector_models.models.detector import ClassifierDetector
    from protector_models.models.guard_lm.detector import GuardLMDetector


def __getattr__(name: str) -> object:
    """``ClassifierDetector`` and ``GuardLMDetector`` on first use: importing the package loads neither torch nor
    transformers."""
    if name == "ClassifierDetector":
        from protector_models.models.detector import ClassifierDetector

        return ClassifierDetector
    if name == "GuardLMDetector":
        from protector_models.models.guard_lm.detector import GuardLMDetector

        return GuardLMDetector
    raise AttributeError(f"module 'protector_models' has no attribute {name!r}")


__all__ = [
    "PRESETS",
    "BatchingConfig",
    "CascadeConfig",
    "CascadeDetector",
    "CausalLMRewriter",
    "CausalLMRewriterConfig",
    "ClassifierDetector",
    "ConfigError",
    "Detector",
    "DetectorConfig",
    "GuardLMConfig",
    "GuardLMDetector",
    "HarmfulContentError",
    "InvalidInputError",
    "Judgement",
    "MicroBatcher",
    "ModelLoadError",
    "ModelRuntimeError",
    "ModelSpec",
    "Pair",
    "Protector",
    "ProtectorConfig",
    "ProtectorError",
    "RefusalRewriter",
    "RefusalRewriterConfig",
    "RemoteDetector",
    "RemoteDetectorConfig",
    "Result",
    "Rewriter",
    "StreamOutcome",
    "StreamingConfig",
    "Verdict",
    "VerifiedStream",
    "as_pairs",
    "load_config",
]
