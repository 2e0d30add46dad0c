"""A self-contained evaluation report: Markdown with ROC, PR and score-histogram PNGs (needs matplotlib)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from protector_models.errors import ProtectorError
from protector_models.evaluation.evaluate import Evaluation
from protector_models.evaluation.metrics import BinaryMetrics


def curve_points(labels: Sequence[bool], scores: Sequence[float]) -> tuple[list[float], list[float], list[float]]:
    """(false-positive rates, recalls, precisions), one point per distinct threshold from high to low."""
    positives = sum(labels)
    negatives = len(labels) - positives
    ranked = sorted(zip(scores, labels, strict=True), key=lambda item: -item[0])
    fprs, recalls, precisions = [0.0], [0.0], [1.0]
    tp = fp = 0
    for index, (score, label) in enumerate(ranked):
        tp, fp = tp + label, fp + (not label)
        if index + 1 < len(ranked) and ranked[index + 1][0] == score:
            continue
        fprs.append(fp / negatives if negatives else 0.0)
        recalls.append(tp / positives if positives else 0.0)
        precisions.append(tp / (tp + fp))
    return fprs, recalls, precisions


def pyplot() -> Any:
    """matplotlib's pyplot on the headless Agg backend, or an error that says how to install it."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ProtectorError(
            "reports draw with matplotlib: pip install matplotlib (or, in the clone, pip install '.[eval]')"
        ) from None
    return plt


def write_report(evaluation: Evaluation, directory: str | Path, title: str) -> Path:
    """Write ``report.md``, ``roc.png``, ``pr.png`` and ``scores.png`` into ``directory``; return the report."""
    plt = pyplot()
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    fprs, recalls, precisions = curve_points(evaluation.labels, evaluation.scores)
    overall = evaluation.overall

    def save(name: str, draw: Any) -> None:
        figure, axes = plt.subplots(figsize=(4.5, 4))
        draw(axes)
        figure.tight_layout()
        figure.savefig(directory / name, dpi=110)
        plt.close(figure)

    def roc(axes: Any) -> None:
        axes.plot(fprs, recalls, label=f"AUROC {_pct(overall.auroc)}")
        axes.plot([0, 1], [0, 1], linestyle=":", color="grey")
        axes.scatter([overall.fpr], [overall.recall], color="red", zorder=3, label=f"threshold {overall.threshold:.2f}")
        axes.set(xlabel="false-positive rate", ylabel="recall (harmful caught)", title="ROC")
        axes.legend(loc="lower right")

    def pr(axes: Any) -> None:
        axes.plot(recalls, precisions, label=f"PR-AUC {_pct(overall.pr_auc)}")
        axes.scatter([overall.recall], [overall.precision], color="red", zorder=3, label="threshold")
        axes.set(xlabel="recall", ylabel="precision", title="Precision-recall", ylim=(0, 1.02))
        axes.legend(loc="lower left")

    def histogram(axes: Any) -> None:
        harmful = [s for s, y in zip(evaluation.scores, evaluation.labels, strict=True) if y]
        benign = [s for s, y in zip(evaluation.scores, evaluation.labels, strict=True) if not y]
        axes.hist([benign, harmful], bins=20, range=(0, 1), label=["benign", "harmful"], color=["tab:blue", "tab:red"])
        axes.axvline(overall.threshold, color="black", linestyle="--", label="threshold")
        axes.set(xlabel="harm score", ylabel="answers", title="Scores by label")
        axes.legend()

    save("roc.png", roc)
    save("pr.png", pr)
    save("scores.png", histogram)
    report = directory / "report.md"
    report.write_text(_markdown(evaluation, title), encoding="utf-8")
    return report


def _markdown(evaluation: Evaluation, title: str) -> str:
    o = evaluation.overall
    lines = [
        f"# Detector evaluation: {title}",
        "",
        f"{o.n} pairs, threshold {o.threshold:.3f}, harmful = positive.",
        "",
        f"Confusion matrix: TP {o.tp}, FP {o.fp}, TN {o.tn}, FN {o.fn}.",
        "",
        _table({"overall": o}),
        "",
        "![ROC](roc.png) ![PR](pr.png) ![scores](scores.png)",
    ]
    for name, groups in (("source", evaluation.by_source), ("category", evaluation.by_category)):
        if groups:
            lines += ["", f"## By {name}", "", _table(groups)]
    return "\n".join(lines) + "\n"


def _table(rows: dict[str, BinaryMetrics]) -> str:
    header = "| | n | F1 | precision | recall | FPR | AUROC | PR-AUC |\n|---|---|---|---|---|---|---|---|"
    body = [
        f"| {name} | {m.n} | {_pct(m.f1)} | {_pct(m.precision)} | {_pct(m.recall)} | {_pct(m.fpr)} | "
        f"{_pct(m.auroc)} | {_pct(m.pr_auc)} |"
        for name, m in rows.items()
    ]
    return "\n".join([header, *body])


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"
