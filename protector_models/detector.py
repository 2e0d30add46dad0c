"""Harm detectors: anything with ``score(pairs) -> list[float]`` giving P(harmful) in [0, 1]."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Literal, Protocol, Self, runtime_checkable

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from protector_models.batching import length_sorted_batches, pad_features
from protector_models.config import DetectorConfig
from protector_models.errors import ModelRuntimeError
from protector_models.loading import load_sequence_classifier
from protector_models.pairs import Pair
from protector_models.templates import resolve_detector_template
from protector_models.windows import PairEncoder, Window, WindowSpec


@runtime_checkable
class Detector(Protocol):
    """Scores pairs: the probability that each answer is harmful, in input order."""

    def score(self, pairs: Sequence[Pair]) -> list[float]:
        """One score per pair, in [0, 1], higher is more harmful."""
        ...


class ClassifierDetector:
    """The paper's detector: a transformers backbone with a one-output head, read through a sigmoid.

    Each pair is encoded with the shared templates; a long answer is read in overlapping windows and scores the
    highest of its windows (see :mod:`protector_models.windows`). Windows are scored in length-sorted batches
    under ``torch.inference_mode()``, a bounded number at a time; scores come back in input order.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        template: str = "auto",
        max_length: int = 512,
        window_tokens: int = 384,
        window_stride: int = 256,
        batch_size: int = 32,
        max_padding: float | None = 0.25,
        score_meaning: Literal["harmful", "safe"] = "harmful",
    ) -> None:
        num_labels = model.config.num_labels
        if num_labels not in (1, 2):
            raise ValueError(f"a detector needs a 1- or 2-output head, this model has {num_labels} outputs")
        self.model = model
        self.tokenizer = tokenizer
        self.template = resolve_detector_template(template, tokenizer)
        self.max_length = min(max_length, _model_limit(model) or max_length)
        self.encoder = PairEncoder(tokenizer, self.template, WindowSpec(self.max_length, window_tokens, window_stride))
        self.batch_size = batch_size
        self.max_padding = max_padding
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
            window_tokens=config.window_tokens,
            window_stride=config.window_stride,
            batch_size=config.batch_size,
            max_padding=config.max_padding,
            score_meaning=config.score_meaning,
        )

    @property
    def device(self) -> torch.device:
        """Where the model's weights live."""
        return next(self.model.parameters()).device

    def score(self, pairs: Sequence[Pair]) -> list[float]:
        """P(harmful) per pair (the highest over its windows), in input order."""
        scores = [-math.inf] * len(pairs)
        with torch.inference_mode():
            for windows in _bounded(self.encoder.windows(pairs), self.batch_size * _BATCHES_IN_FLIGHT):
                for probability, owner in self.score_windows(windows):
                    scores[owner] = max(scores[owner], probability)
        return scores

    def score_windows(self, windows: Sequence[Window]) -> Iterator[tuple[float, int]]:
        """(P(harmful), owner) for each window, batched by length."""
        features = {
            "input_ids": [w.input_ids for w in windows],
            "attention_mask": [[1] * len(w.input_ids) for w in windows],
        }
        if self.encoder.uses_token_types:
            features["token_type_ids"] = [w.token_type_ids for w in windows]
        lengths = [len(ids) for ids in features["input_ids"]]
        for chunk in length_sorted_batches(lengths, self.batch_size, self.max_padding):
            batch = pad_features(
                features, chunk, pad_token_id=self.tokenizer.pad_token_id, padding_side=self.tokenizer.padding_side
            )
            probabilities = self.probabilities({k: v.to(self.device) for k, v in batch.items()})
            for index, value in zip(chunk, probabilities.tolist(), strict=True):
                yield value, windows[index].owner

    def probabilities(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """P(harmful) for a padded batch; a non-finite logit is a model fault, never a score."""
        logits = self.model(**batch).logits.float()
        if not torch.isfinite(logits).all():
            raise ModelRuntimeError("the detector produced non-finite logits (NaN or infinity); the model is broken")
        harmful = torch.sigmoid(logits[:, 0]) if logits.shape[-1] == 1 else torch.softmax(logits, -1)[:, 1]
        return 1.0 - harmful if self.invert else harmful


_BATCHES_IN_FLIGHT = 16
"""Windows are encoded and length-sorted this many batches at a time: memory stays bounded on any input."""


def _bounded(windows: Iterator[Window], size: int) -> Iterator[list[Window]]:
    buffer: list[Window] = []
    for window in windows:
        buffer.append(window)
        if len(buffer) >= size:
            yield buffer
            buffer = []
    if buffer:
        yield buffer


def _model_limit(model: PreTrainedModel) -> int | None:
    """The longest input the model's position embeddings allow, where the config says."""
    return getattr(model.config, "max_position_embeddings", None)
