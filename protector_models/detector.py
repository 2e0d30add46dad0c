"""Harm detectors: anything with ``score(pairs) -> list[float]`` giving P(harmful) in [0, 1]."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol, Self, runtime_checkable

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from protector_models.batching import length_sorted_batches, pad_features
from protector_models.config import DetectorConfig
from protector_models.loading import load_sequence_classifier
from protector_models.pairs import Pair
from protector_models.templates import encode_for_detector, resolve_detector_template


@runtime_checkable
class Detector(Protocol):
    """Scores pairs: the probability that each answer is harmful, in input order."""

    def score(self, pairs: Sequence[Pair]) -> list[float]:
        """One score per pair, in [0, 1], higher is more harmful."""
        ...


class ClassifierDetector:
    """The paper's detector: a transformers backbone with a one-output head, read through a sigmoid.

    Pairs are encoded with the shared templates, sorted by length so each batch pads little, and run under
    ``torch.inference_mode()``; scores come back in input order.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        template: str = "auto",
        max_length: int = 512,
        batch_size: int = 32,
        score_meaning: Literal["harmful", "safe"] = "harmful",
    ) -> None:
        num_labels = model.config.num_labels
        if num_labels not in (1, 2):
            raise ValueError(f"a detector needs a 1- or 2-output head, this model has {num_labels} outputs")
        self.model = model
        self.tokenizer = tokenizer
        self.template = resolve_detector_template(template, tokenizer)
        self.max_length = min(max_length, _model_limit(model) or max_length)
        self.batch_size = batch_size
        self.invert = score_meaning == "safe"  # decided once: every score below means P(harmful)

    @classmethod
    def from_config(cls, config: DetectorConfig) -> Self:
        """Load the model named by ``config.model`` and wrap it."""
        loaded = load_sequence_classifier(config.model)
        return cls(
            loaded.model,
            loaded.tokenizer,
            template=config.template,
            max_length=config.model.max_length,
            batch_size=config.batch_size,
            score_meaning=config.score_meaning,
        )

    @property
    def device(self) -> torch.device:
        """Where the model's weights live."""
        return next(self.model.parameters()).device

    def score(self, pairs: Sequence[Pair]) -> list[float]:
        """P(harmful) per pair, batched by length, in input order."""
        if not pairs:
            return []
        features = encode_for_detector(self.tokenizer, pairs, self.template, self.max_length)
        lengths = [len(ids) for ids in features["input_ids"]]
        scores = [0.0] * len(pairs)
        with torch.inference_mode():
            for chunk in length_sorted_batches(lengths, self.batch_size):
                batch = pad_features(
                    features,
                    chunk,
                    pad_token_id=self.tokenizer.pad_token_id,
                    padding_side=self.tokenizer.padding_side,
                )
                probabilities = self._probabilities({k: v.to(self.device) for k, v in batch.items()})
                for index, value in zip(chunk, probabilities.tolist(), strict=True):
                    scores[index] = value
        return scores

    def _probabilities(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        logits = self.model(**batch).logits.float()
        harmful = torch.sigmoid(logits[:, 0]) if logits.shape[-1] == 1 else torch.softmax(logits, -1)[:, 1]
        return 1.0 - harmful if self.invert else harmful


def _model_limit(model: PreTrainedModel) -> int | None:
    """The longest input the model's position embeddings allow, where the config says."""
    return getattr(model.config, "max_position_embeddings", None)
