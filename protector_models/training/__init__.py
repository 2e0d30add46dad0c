"""Training the detector (BCE on labelled pairs) with the same templates the protector uses at inference."""

from protector_models.training.detector import DetectorTrainingArgs, TrainingOutcome, train_detector

__all__ = ["DetectorTrainingArgs", "TrainingOutcome", "train_detector"]
