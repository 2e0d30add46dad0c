"""Metrics against values computed by hand."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protector_models.evaluation.metrics import (
    auroc,
    average_precision,
    best_f1_threshold,
    binary_metrics,
    source_balanced_threshold,
    source_figures,
)

LABELS = [True, True, False, True, False, False]
SCORES = [0.9, 0.4, 0.6, 0.8, 0.1, 0.3]


def test_counts_and_rates_at_threshold():
    metrics = binary_metrics(LABELS, SCORES, 0.5)
    # flagged: 0.9 (T), 0.6 (F), 0.8 (T) -> tp 2, fp 1; missed 0.4 (T) -> fn 1; tn 2
    assert (metrics.tp, metrics.fp, metrics.fn, metrics.tn) == (2, 1, 1, 2)
    assert metrics.precision == pytest.approx(2 / 3)
    assert metrics.recall == pytest.approx(2 / 3)
    assert metrics.f1 == pytest.approx(2 / 3)
    assert metrics.fpr == pytest.approx(1 / 3)


def test_auroc_counts_ordered_pairs():
    # positive/negative pairs ranked correctly: 0.9>all 3, 0.8>all 3, 0.4>0.1,0.3 -> 8 of 9
    assert auroc(LABELS, SCORES) == pytest.approx(8 / 9)
    assert auroc([True, False], [0.5, 0.5]) == pytest.approx(0.5)
    assert auroc([True, True], [0.1, 0.2]) is None


def test_average_precision():
    # ranked: 0.9 T (1/1), 0.8 T (2/2), 0.6 F, 0.4 T (3/4) -> (1 + 1 + 0.75) / 3
    assert average_precision(LABELS, SCORES) == pytest.approx(2.75 / 3)


def test_best_threshold_maximises_f1():
    threshold = best_f1_threshold(LABELS, SCORES)
    assert threshold == pytest.approx(0.35)  # midway between 0.4 and 0.3: flags all positives and one negative
    assert binary_metrics(LABELS, SCORES, threshold).f1 == pytest.approx(6 / 7)


def test_curve_points_walk_thresholds_from_high_to_low():
    from protector_models.evaluation.reporting import curve_points

    fprs, recalls, precisions = curve_points(LABELS, SCORES)
    # thresholds 0.9, 0.8, 0.6, 0.4, 0.3, 0.1 after the (0, 0) start
    assert recalls == pytest.approx([0, 1 / 3, 2 / 3, 2 / 3, 1, 1, 1])
    assert fprs == pytest.approx([0, 0, 0, 1 / 3, 1 / 3, 2 / 3, 1])
    assert precisions[3] == pytest.approx(2 / 3)


@pytest.mark.parametrize("metric", [auroc, average_precision, best_f1_threshold])
def test_a_nan_score_is_an_error_not_a_hang(metric):
    with pytest.raises(ValueError, match=r"1 of 3 scores are NaN or infinite \(first at position 1\)"):
        metric([True, False, True], [0.9, float("nan"), 0.2])


def test_source_figures_are_f1_or_one_minus_the_false_alarm_rate():
    labels = [True, False, True, False, False, False]
    scores = [0.9, 0.8, 0.2, 0.1, 0.7, 0.3]
    sources = ["mixed", "mixed", "mixed", "mixed", "benign", "benign"]
    figures = source_figures(labels, scores, sources, threshold=0.5)
    assert figures == pytest.approx({"mixed": 2 * 1 / (1 + 1 + 2), "benign": 1 - 1 / 2})


def test_a_small_source_weighs_as_much_as_a_big_one():
    """Pooled F1 favours the big source's best threshold (0.5); the balanced rule goes higher, where the small
    benign source raises no false alarm at the cost of one of the big source's harmful rows."""
    labels = [True] * 10 + [False] * 10 + [False]
    scores = [0.9] * 9 + [0.55] + [0.1] * 10 + [0.6]
    sources = ["big"] * 20 + ["small"]
    assert best_f1_threshold(labels, scores) < 0.55
    assert source_balanced_threshold(labels, scores, sources) > 0.6


@given(
    st.lists(
        st.tuples(st.booleans(), st.integers(0, 20).map(lambda n: n / 20), st.sampled_from("abc")),
        min_size=1,
        max_size=30,
    )
)
def test_the_rule_picks_the_threshold_with_the_highest_mean_over_sources(rows):
    """Among thresholds that flag something (a detector that flags nothing is not a choice)."""
    labels, scores, sources = (list(column) for column in zip(*rows, strict=True))

    def mean(threshold: float) -> float:
        figures = source_figures(labels, scores, sources, threshold)
        return sum(figures.values()) / len(figures)

    picked = source_balanced_threshold(labels, scores, sources)
    candidates = {score + offset for score in scores for offset in (-0.01, 0.0, 0.01) if score + offset <= max(scores)}
    assert mean(picked) >= max(mean(threshold) for threshold in candidates) - 1e-9
