"""Length-sorted batches: bounded by count, and (with ``max_padding``) by the padding a batch may carry."""

from __future__ import annotations

import random

import pytest

from protector_models import Pair, Protector
from protector_models.batching import length_sorted_batches


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
