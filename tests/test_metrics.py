"""Metrics against values computed by hand."""

from __future__ import annotations

import pytest

from protector_models.metrics import auroc, average_precision, best_f1_threshold, binary_metrics

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
    from protector_models.reporting import curve_points

    fprs, recalls, precisions = curve_points(LABELS, SCORES)
    # thresholds 0.9, 0.8, 0.6, 0.4, 0.3, 0.1 after the (0, 0) start
    assert recalls == pytest.approx([0, 1 / 3, 2 / 3, 2 / 3, 1, 1, 1])
    assert fprs == pytest.approx([0, 0, 0, 1 / 3, 1 / 3, 2 / 3, 1])
    assert precisions[3] == pytest.approx(2 / 3)


@pytest.mark.parametrize("metric", [auroc, average_precision, best_f1_threshold])
def test_a_nan_score_is_an_error_not_a_hang(metric):
    with pytest.raises(ValueError, match=r"1 of 3 scores are NaN or infinite \(first at position 1\)"):
        metric([True, False, True], [0.9, float("nan"), 0.2])
