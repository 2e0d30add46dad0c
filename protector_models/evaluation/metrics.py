"""Detection metrics (harmful = positive), in plain Python so they can be checked by hand."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class BinaryMetrics:
    """Counts and rates at one threshold, plus threshold-free AUROC and PR-AUC."""

    n: int
    threshold: float
    tp: int
    fp: int
    tn: int
    fn: int
    precision: float
    recall: float
    f1: float
    fpr: float
    auroc: float | None
    pr_auc: float | None

    def as_dict(self) -> dict[str, float | int | None]:
        """A JSON-ready dict."""
        return asdict(self)


def binary_metrics(labels: Sequence[bool], scores: Sequence[float], threshold: float) -> BinaryMetrics:
    """Precision, recall, F1 and FPR at ``threshold`` (score >= threshold is flagged), AUROC, PR-AUC."""
    if len(labels) != len(scores):
        raise ValueError(f"{len(labels)} labels but {len(scores)} scores")
    tp = sum(1 for y, s in zip(labels, scores, strict=True) if y and s >= threshold)
    fp = sum(1 for y, s in zip(labels, scores, strict=True) if not y and s >= threshold)
    fn = sum(1 for y in labels if y) - tp
    tn = len(labels) - tp - fp - fn
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return BinaryMetrics(
        n=len(labels),
        threshold=threshold,
        tp=tp,
        fp=fp,
        tn=tn,
        fn=fn,
        precision=precision,
        recall=recall,
        f1=f1,
        fpr=fp / (fp + tn) if fp + tn else 0.0,
        auroc=auroc(labels, scores),
        pr_auc=average_precision(labels, scores),
    )


def auroc(labels: Sequence[bool], scores: Sequence[float]) -> float | None:
    """Area under the ROC curve (the Mann-Whitney statistic, ties counted half); None with one class."""
    positives = sum(1 for y in labels if y)
    negatives = len(labels) - positives
    if not positives or not negatives:
        return None
    ranked = sorted(zip(_finite(scores), labels, strict=True))
    rank_sum, index = 0.0, 0
    while index < len(ranked):
        end = index
        while end < len(ranked) and ranked[end][0] == ranked[index][0]:
            end += 1
        mean_rank = (index + 1 + end) / 2  # 1-based ranks index+1 .. end share their mean
        rank_sum += mean_rank * sum(1 for _, y in ranked[index:end] if y)
        index = end
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def average_precision(labels: Sequence[bool], scores: Sequence[float]) -> float | None:
    """PR-AUC as average precision (the mean of precision at each true positive); None without positives."""
    positives = sum(1 for y in labels if y)
    if not positives:
        return None
    ranked = sorted(zip(_finite(scores), labels, strict=True), key=lambda item: -item[0])
    hits, total = 0, 0.0
    for rank, (_, label) in enumerate(ranked, start=1):
        if label:
            hits += 1
            total += hits / rank
    return total / positives


def best_f1_threshold(labels: Sequence[bool], scores: Sequence[float]) -> float:
    """The score threshold that maximises F1 (pick it on a validation split, never on dev).

    One sweep over the scores from high to low; the threshold lands midway between the lowest flagged score
    and the next one down, so tiny numeric drift (a merged adapter, another device) does not flip a verdict.
    """
    positives = sum(1 for y in labels if y)
    ranked = sorted(zip(_finite(scores), labels, strict=True), key=lambda item: -item[0])
    best_f1, best_threshold, tp, fp = -1.0, 0.5, 0, 0
    for index, (score, label) in enumerate(ranked):
        tp, fp = tp + label, fp + (not label)
        if index + 1 < len(ranked) and ranked[index + 1][0] == score:
            continue  # a threshold cannot split tied scores
        f1 = 2 * tp / (tp + fp + positives) if positives else 0.0
        if f1 > best_f1:
            lower = ranked[index + 1][0] if index + 1 < len(ranked) else score
            best_f1, best_threshold = f1, (score + lower) / 2  # midway: robust to float noise at either score
    return best_threshold


def source_figures(
    labels: Sequence[bool], scores: Sequence[float], sources: Sequence[str], threshold: float
) -> dict[str, float]:
    """Per source, the figure :func:`source_balanced_threshold` averages: F1 (sources with harmful rows) or
    1 - false-alarm rate (sources without), at ``threshold``."""
    figures = {}
    for source in sorted(set(sources)):
        rows = [(label, score) for label, score, s in zip(labels, scores, sources, strict=True) if s == source]
        positives = sum(label for label, _ in rows)
        tp = sum(label and score >= threshold for label, score in rows)
        fp = sum(not label and score >= threshold for label, score in rows)
        figures[source] = _source_figure(tp, fp, positives, len(rows) - positives)
    return figures


def _source_figure(tp: int, fp: int, positives: int, negatives: int) -> float:
    """F1 for a source with harmful rows, 1 - false-alarm rate for one without."""
    return 2 * tp / (tp + fp + positives) if positives else 1.0 - fp / negatives


def source_balanced_threshold(labels: Sequence[bool], scores: Sequence[float], sources: Sequence[str]) -> float:
    """The threshold that maximises the mean over sources of F1 (sources with harmful rows) or 1 - false-alarm
    rate (sources without), so no single source decides it; with one source it is the best-F1 threshold. Only
    thresholds that flag at least one row are candidates.

    One sweep over the scores from high to low, as :func:`best_f1_threshold`, midway between neighbours.
    """
    if not len(labels) == len(scores) == len(sources):
        raise ValueError(f"{len(labels)} labels, {len(scores)} scores and {len(sources)} sources")
    names = sorted(set(sources))
    column = {name: i for i, name in enumerate(names)}
    positives = [0] * len(names)
    negatives = [0] * len(names)
    for label, source in zip(labels, sources, strict=True):
        (positives if label else negatives)[column[source]] += 1
    tp, fp = [0] * len(names), [0] * len(names)
    ranked = sorted(zip(_finite(scores), labels, sources, strict=True), key=lambda item: -item[0])
    best_value, best_threshold = -1.0, 0.5
    for index, (score, label, source) in enumerate(ranked):
        counts = tp if label else fp
        counts[column[source]] += 1
        if index + 1 < len(ranked) and ranked[index + 1][0] == score:
            continue  # a threshold cannot split tied scores
        value = sum(map(_source_figure, tp, fp, positives, negatives)) / len(names)
        if value > best_value:
            lower = ranked[index + 1][0] if index + 1 < len(ranked) else score
            best_value, best_threshold = value, (score + lower) / 2
    return best_threshold


def _finite(scores: Sequence[float]) -> Sequence[float]:
    """``scores``, or a ValueError when one is NaN or infinite (ranking them would be meaningless, or hang)."""
    bad = [i for i, score in enumerate(scores) if not math.isfinite(score)]
    if bad:
        raise ValueError(
            f"{len(bad)} of {len(scores)} scores are NaN or infinite (first at position {bad[0]}): "
            "the model's outputs overflowed or diverged"
        )
    return scores
