"""Training the detector (BCE on labelled pairs) and the detoxifier (target-only autoregressive loss), with the
same templates the protector uses at inference."""

from protector_models.training.detector import DetectorTrainingArgs, TrainingOutcome, train_detector
from protector_models.training.detoxifier import (
    DetoxifierTrainingArgs,
    DetoxifierTrainingOutcome,
    encode_detox_examples,
    train_detoxifier,
)

__all__ = [
    "DetectorTrainingArgs",
    "DetoxifierTrainingArgs",
    "DetoxifierTrainingOutcome",
    "TrainingOutcome",
    "encode_detox_examples",
    "train_detector",
    "train_detoxifier",
]
