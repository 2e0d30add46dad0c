"""Harm detectors: anything with ``score(pairs) -> list[float]`` giving P(harmful) in [0, 1]."""

from __future__ import annotations

import math
from collections.abc import Generator, Iterator, Sequence
from contextlib import closing
from typing import Literal, Self

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from protector_models.config.schema import DetectorConfig
from protector_models.errors import ModelRuntimeError
from protector_models.interfaces import Detector as Detector  # re-exported: the protocol's former home
from protector_models.models.batching import filled_mask, length_sorted_batches, pad_rows, prefetched
from protector_models.models.loading import load_sequence_classifier
from protector_models.models.passes import PaddedBatch, run_in_parts
from protector_models.models.templates import resolve_detector_template
from protector_models.models.windows import CHUNK_CHARS, PairEncoder, Window, WindowSpec
from protector_models.pairs import Pair


class ClassifierDetector:
    """The paper's detector: a transformers backbone with a one-output head, read through a sigmoid.

    Each pair is encoded with the shared templates; a long answer is read in overlapping windows and scores the
    highest of its windows (see :mod:`protector_models.models.windows`). Windows are scored in length-sorted batches
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
        prefetch_batches: int | None = None,
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
        if prefetch_batches is not None and prefetch_batches < 0:
            raise ValueError(f"prefetch_batches must be None (by device) or at least 0, got {prefetch_batches}")
        self.prefetch_batches = prefetch_batches
        """Batches a worker thread builds ahead of the model; None: 3 on an accelerator, none on the CPU."""

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
        """P(harmful) per pair (the highest over its windows), in input order.

        Windows are built and padded into length-sorted batches (on an accelerator, by a worker thread a few
        batches ahead of the model); each batch's probabilities go into a per-pair maximum kept on the device,
        read back once at the end. A batch that runs out of device memory is split and retried.
        """
        if not pairs:
            return []
        many = len(pairs) > self.batch_size or sum(len(pair.answer) for pair in pairs) > CHUNK_CHARS
        return self._scores(self.encoder.windows(pairs), len(pairs), prefetch=many)

    def score_windows(self, windows: Sequence[Window]) -> list[float]:
        """P(harmful) of each window (inputs cut by :attr:`encoder`), in order: a streamed answer is judged so,
        window by window as its text arrives (:mod:`protector_models.models.window_stream`)."""
        if not windows:
            return []
        numbered = (Window(index, window.input_ids, window.token_type_ids) for index, window in enumerate(windows))
        return self._scores(numbered, len(windows), prefetch=len(windows) > self.batch_size)

    def _scores(self, windows: Iterator[Window], count: int, *, prefetch: bool) -> list[float]:
        """The highest probability over the windows of each owner ``0 .. count - 1``."""
        device = self.device
        batches: Generator[PaddedBatch, None, None] = self._batches(windows, pin=device.type == "cuda")
        depth = self._prefetch_depth(device)
        if depth and prefetch:
            batches = prefetched(batches, depth)  # one batch's worth is built in line: a thread would cost more
        with closing(batches), torch.inference_mode():
            scores = torch.full((count,), -math.inf, device=device)
            finite = torch.ones((), dtype=torch.bool, device=device)
            limit: int | None = None  # rows per forward pass, once a batch has run out of memory
            for batch in batches:
                limit = self._score_batch(batch, scores, finite, limit)
            values = torch.cat([scores, finite.to(scores.dtype).unsqueeze(0)]).tolist()  # the one wait per call
        if values.pop() != 1.0:
            raise ModelRuntimeError("the detector produced non-finite logits (NaN or infinity); the model is broken")
        return values

    def probabilities(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """P(harmful) for a padded batch; a non-finite logit is a model fault, never a score."""
        harmful, finite = self._forward(batch)
        if not bool(finite):
            raise ModelRuntimeError("the detector produced non-finite logits (NaN or infinity); the model is broken")
        return harmful

    def _forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """P(harmful) per row, and whether every logit was finite (a tensor, so nothing waits for the device)."""
        logits = self.model(**batch).logits.float()
        harmful = torch.sigmoid(logits[:, 0]) if logits.shape[-1] == 1 else torch.softmax(logits, -1)[:, 1]
        return (1.0 - harmful if self.invert else harmful), torch.isfinite(logits).all()

    def _score_batch(
        self, batch: PaddedBatch, scores: torch.Tensor, finite: torch.Tensor, limit: int | None
    ) -> int | None:
        """Fold one batch into ``scores`` (max per owner) and ``finite``; returns the row limit for later batches
        (a batch that runs out of device memory is halved and retried, see :func:`run_in_parts`)."""

        def fold(part: PaddedBatch) -> None:
            probabilities, ok = self._forward(part.features)
            scores.scatter_reduce_(0, part.owners, probabilities, reduce="amax")
            finite.logical_and_(ok)

        return run_in_parts(batch, scores.device, limit, fold)

    def _batches(self, windows: Iterator[Window], *, pin: bool) -> Generator[PaddedBatch, None, None]:
        """Padded CPU batches of windows, length-sorted a bounded number of windows at a time."""
        for group in _bounded(windows, self.batch_size * _BATCHES_IN_FLIGHT):
            lengths = [len(window.input_ids) for window in group]
            for chunk in length_sorted_batches(lengths, self.batch_size, self.max_padding):
                batch = self._pad([group[i] for i in chunk])
                yield batch.pinned() if pin else batch

    def _pad(self, windows: Sequence[Window]) -> PaddedBatch:
        side = self.tokenizer.padding_side
        input_ids = pad_rows([w.input_ids for w in windows], self.tokenizer.pad_token_id, side)
        lengths = np.fromiter((len(w.input_ids) for w in windows), dtype=np.int64, count=len(windows))
        features = {
            "input_ids": input_ids,
            "attention_mask": torch.from_numpy(filled_mask(lengths, input_ids.shape[1], side).astype(np.int64)),
        }
        if self.encoder.uses_token_types:
            features["token_type_ids"] = pad_rows([w.token_type_ids for w in windows], 0, side)
        return PaddedBatch(features, torch.tensor([w.owner for w in windows], dtype=torch.long))

    def _prefetch_depth(self, device: torch.device) -> int:
        if self.prefetch_batches is not None:
            return self.prefetch_batches
        return 0 if device.type == "cpu" else _ACCELERATOR_PREFETCH


_BATCHES_IN_FLIGHT = 16
"""Windows are encoded and length-sorted this many batches at a time: memory stays bounded on any input."""

_ACCELERATOR_PREFETCH = 3
"""Batches built ahead of the model on an accelerator. On the CPU batches are built in line: the model has every
core, and tokenising and padding are about 1% of its time, so a thread only competes with it."""


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
