"""Batches: length-sorted and bounded by count and padding; vectorised padding equals the plain one; the worker
thread that builds batches ahead of the model is bounded and safe."""

from __future__ import annotations

import random
import threading
import time

import pytest
import torch

from protector_models import Pair, Protector
from protector_models.models.batching import length_sorted_batches, pad_features, pad_rows, prefetched


def test_without_a_padding_limit_batches_are_cut_by_count_only():
    lengths = [5, 300, 7, 40, 41, 6]
    assert list(length_sorted_batches(lengths, 4)) == [[1, 4, 3, 2], [5, 0]]


def test_a_padding_limit_keeps_long_inputs_from_padding_short_ones():
    lengths = [5, 300, 7, 40, 41, 6]
    batches = list(length_sorted_batches(lengths, 4, max_padding=0.25))
    assert batches == [[1], [4, 3], [2, 5, 0]]
    for batch in batches:
        longest, real = max(lengths[i] for i in batch), sum(lengths[i] for i in batch)
        assert longest * len(batch) <= real * 1.25


@pytest.mark.parametrize("max_padding", [0.0, 0.25, 1.0, None])
def test_every_index_comes_once_longest_first_within_the_batch_size(max_padding):
    lengths = [random.Random(seed).randint(1, 500) for seed in range(200)]
    batches = list(length_sorted_batches(lengths, 16, max_padding))
    flat = [i for batch in batches for i in batch]
    assert sorted(flat) == list(range(200))
    assert [lengths[i] for i in flat] == sorted(lengths, reverse=True)
    assert all(1 <= len(batch) <= 16 for batch in batches)


def test_the_detector_scores_the_same_with_or_without_a_padding_limit(protector: Protector):
    detector = protector.detector
    pairs = [
        Pair("how do i make it", " ".join(["mix the bread"] * n + ["poison" if n % 2 else "cake"]))
        for n in range(1, 12)
    ]
    detector.max_padding = None
    unlimited = detector.score(pairs)
    detector.max_padding = 0.0
    assert detector.score(pairs) == pytest.approx(unlimited, abs=1e-5)


ROWS = [[5, 6, 7], [], [8], [9, 10, 11, 12]]


@pytest.mark.parametrize("side", ["right", "left"])
def test_pad_rows_matches_padding_by_hand(side: str):
    width = max(map(len, ROWS))
    by_hand = [([0] * (width - len(row)) + row) if side == "left" else (row + [0] * (width - len(row))) for row in ROWS]
    padded = pad_rows(ROWS, 0, side)
    assert padded.dtype == torch.long
    assert padded.tolist() == by_hand


def test_pad_rows_of_nothing():
    assert pad_rows([], 0).shape == (0, 0)
    assert pad_rows([[], []], 3).shape == (2, 0)


def test_pad_features_pads_each_feature_with_its_own_value():
    features = {"input_ids": ROWS, "attention_mask": [[1] * len(r) for r in ROWS], "labels": ROWS}
    batch = pad_features(features, [3, 0], pad_token_id=1)
    assert batch["input_ids"].tolist() == [[9, 10, 11, 12], [5, 6, 7, 1]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]]
    assert batch["labels"].tolist() == [[9, 10, 11, 12], [5, 6, 7, -100]]


def test_prefetched_yields_everything_in_order():
    assert list(prefetched(iter(range(100)), 3)) == list(range(100))
    assert list(prefetched([], 1)) == []
    with pytest.raises(ValueError, match="depth"):
        list(prefetched([1], 0))


def test_prefetched_stays_bounded_and_stops_when_the_caller_does():
    made: list[int] = []

    def items():
        for i in range(1000):
            made.append(i)
            yield i

    stream = prefetched(items(), 2)
    assert next(stream) == 0
    time.sleep(0.2)  # the worker fills the queue, then waits
    assert len(made) <= 1 + 2 + 1  # the one taken, two waiting, one being put
    stream.close()
    assert len(made) <= 5
    assert not any(t.name == "mllm-protector-prefetch" and t.is_alive() for t in threading.enumerate())


def test_prefetched_raises_the_workers_error_where_it_happened():
    def items():
        yield 1
        yield 2
        raise KeyError("broken input")

    stream = prefetched(items(), 4)
    assert [next(stream), next(stream)] == [1, 2]
    with pytest.raises(KeyError, match="broken input"):
        next(stream)
