"""Training the detector (BCE on labelled pairs) and the detoxifier (target-only autoregressive loss), with the
same templates the protector uses at inference. The trainers load torch on first use; the settings do not."""

from typing import TYPE_CHECKING

from protector_models.training.args import DetectorTrainingArgs

if TYPE_CHECKING:
    from protector_models.training.detector import TrainingOutcome, train_detector
    from protector_models.training.detoxifier import (
        DetoxifierTrainingArgs,
        DetoxifierTrainingOutcome,
        encode_detox_examples,
        train_detoxifier,
    )

_LAZY = {
    "TrainingOutcome": "detector",
    "train_detector": "detector",
    "DetoxifierTrainingArgs": "detoxifier",
    "DetoxifierTrainingOutcome": "detoxifier",
    "encode_detox_examples": "detoxifier",
    "train_detoxifier": "detoxifier",
}


def __getattr__(name: str) -> object:
    """The trainers, imported (with torch) when first named."""
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f"protector_models.training.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'protector_models.training' has no attribute {name!r}")


__all__ = [
    "DetectorTrainingArgs",
    "DetoxifierTrainingArgs",
    "DetoxifierTrainingOutcome",
    "TrainingOutcome",
    "encode_detox_examples",
    "train_detector",
    "train_detoxifier",
]
