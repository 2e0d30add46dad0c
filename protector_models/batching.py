"""Length-sorted batching and padding of token features, shared by inference and training."""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping, Sequence

import torch

_PAD_VALUES = {"attention_mask": 0, "token_type_ids": 0, "labels": -100}


def length_sorted_batches(
    lengths: Sequence[int], batch_size: int, max_padding: float | None = None
) -> Iterator[list[int]]:
    """Indices grouped into batches of similar length, longest first (so memory trouble shows at once).

    With ``max_padding``, a batch also ends before its padding would exceed that share of its real tokens: a
    few long inputs then never pad many short ones (on a CPU, a padded token costs as much as a real one).
    """
    order = sorted(range(len(lengths)), key=lengths.__getitem__, reverse=True)
    if max_padding is None:
        for start in range(0, len(order), batch_size):
            yield order[start : start + batch_size]
        return
    batch: list[int] = []
    tokens = 0
    for index in order:
        padded = lengths[batch[0]] * (len(batch) + 1) if batch else 0  # the first of a batch is its longest
        if batch and (len(batch) == batch_size or padded > (tokens + lengths[index]) * (1 + max_padding)):
            yield batch
            batch, tokens = [], 0
        batch.append(index)
        tokens += lengths[index]
    if batch:
        yield batch


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
    order = list(range(len(lengths)))
    generator.shuffle(order)
    return packed_batches(order, lengths, [1] * len(lengths), batch_size, generator)


def packed_batches(
    order: Sequence[int], lengths: Sequence[int], sizes: Sequence[int], budget: int, generator: random.Random
) -> list[list[int]]:
    """The items of ``order`` (repeats allowed) in batches of similar length whose ``sizes`` add up to at most
    ``budget`` (an item larger than that goes alone), in a random order. Items are sorted by length within
    stretches of ``50 * budget`` items of ``order``, so batches stay random across an epoch."""
    batches = []
    window = budget * 50
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lengths.__getitem__, reverse=True)
        batch: list[int] = []
        used = 0
        for item in chunk:
            if batch and used + sizes[item] > budget:
                batches.append(batch)
                batch, used = [], 0
            batch.append(item)
            used += sizes[item]
        if batch:
            batches.append(batch)
    generator.shuffle(batches)
    return batches
