"""Length-sorted batching and padding of token features, shared by inference and training."""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping, Sequence

import torch

_PAD_VALUES = {"attention_mask": 0, "token_type_ids": 0, "labels": -100}


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> Iterator[list[int]]:
    """Indices grouped into batches of similar length, longest first (so memory trouble shows at once)."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__, reverse=True)
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def pad_features(
    features: Mapping[str, Sequence[Sequence[int]]],
    indices: Sequence[int],
    *,
    pad_token_id: int,
    padding_side: str = "right",
) -> dict[str, torch.Tensor]:
    """Stack the rows ``indices`` of each feature into one padded ``long`` tensor."""
    width = max(len(features["input_ids"][i]) for i in indices)
    batch = {}
    for key, rows in features.items():
        if key == "offset_mapping":
            continue
        pad = _PAD_VALUES.get(key, pad_token_id)
        padded = []
        for i in indices:
            filler = [pad] * (width - len(rows[i]))
            padded.append(filler + list(rows[i]) if padding_side == "left" else list(rows[i]) + filler)
        batch[key] = torch.tensor(padded, dtype=torch.long)
    return batch


def shuffled_length_batches(lengths: Sequence[int], batch_size: int, generator: random.Random) -> list[list[int]]:
    """Batches of similar length (little padding) in a random order, re-drawn each epoch."""
    indices = list(range(len(lengths)))
    generator.shuffle(indices)
    batches = []
    window = batch_size * 50
    for start in range(0, len(indices), window):
        chunk = indices[start : start + window]
        for local in length_sorted_batches([lengths[i] for i in chunk], batch_size):
            batches.append([chunk[i] for i in local])
    generator.shuffle(batches)
    return batches
