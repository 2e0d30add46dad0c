"""``mllm-protector eval``: precision, recall, F1, AUROC and PR-AUC of the detector on labelled data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from protector_models.cli.options import (
    AnswerKeyOption,
    BatchSizeOption,
    ConfigOption,
    DeviceOption,
    PresetOption,
    QuestionKeyOption,
    ThresholdOption,
    build_config,
    fail,
)
from protector_models.data.labelled import read_labelled
from protector_models.errors import InvalidInputError, ProtectorError
from protector_models.evaluation.evaluate import Evaluation, evaluate
from protector_models.evaluation.metrics import BinaryMetrics
from protector_models.evaluation.reporting import write_report
from protector_models.protector import Protector


def evaluate_command(
    data: Annotated[Path, typer.Argument(metavar="DATA", help="Labelled JSON Lines: question, answer, harmful.")],
    config: ConfigOption = None,
    preset: PresetOption = None,
    threshold: ThresholdOption = None,
    batch_size: BatchSizeOption = None,
    device: DeviceOption = None,
    question_key: QuestionKeyOption = "question",
    answer_key: AnswerKeyOption = "answer",
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable metrics.")] = False,
    report: Annotated[
        Path | None, typer.Option("--report", help="Write report.md with ROC, PR and histogram PNGs here.")
    ] = None,
) -> None:
    """Measure the detector (harmful = positive) at the configured threshold."""
    try:
        built = build_config(config, preset, threshold=threshold, device=device, batch_size=batch_size)
        examples = read_labelled(data, question_key=question_key, answer_key=answer_key)
        if not examples:
            raise InvalidInputError(f"nothing to measure in {data}: it holds no labelled pairs")
        protector = Protector.from_config(built)
        result = evaluate(protector, examples)
        if report is not None:
            typer.echo(f"report: {write_report(result, report, data.name)}", err=True)
    except (ProtectorError, OSError) as error:
        raise fail(error) from None
    typer.echo(json.dumps({"data": str(data), **result.as_dict()}, indent=2) if as_json else render(data.name, result))


def render(name: str, result: Evaluation) -> str:
    """A plain-text table: overall, then per source and per category."""
    lines = [f"{name}: threshold {result.overall.threshold:.3f}", HEADER, metrics_row("overall", result.overall)]
    for title, groups in (("source", result.by_source), ("category", result.by_category)):
        if len(groups) > 1 or (groups and title == "category"):
            lines += [f"by {title}:", *(metrics_row(group, metrics) for group, metrics in groups.items())]
    return "\n".join(lines)


HEADER = f"{'':28} {'n':>6} {'F1':>6} {'prec':>6} {'recall':>6} {'FPR':>6} {'AUROC':>6} {'PR-AUC':>6}"


def metrics_row(label: str, m: BinaryMetrics) -> str:
    """One table row in percent, aligned with :data:`HEADER`."""

    def pct(value: float | None) -> str:
        return "   -  " if value is None else f"{100 * value:6.1f}"

    return (
        f"{label[:28]:28} {m.n:6d} {pct(m.f1)} {pct(m.precision)} {pct(m.recall)} {pct(m.fpr)} "
        f"{pct(m.auroc)} {pct(m.pr_auc)}"
    )


def register(app: typer.Typer) -> None:
    """Add ``eval`` to the command line."""
    app.command("eval", short_help="Measure the detector on labelled pairs (F1, AUROC, ...).")(evaluate_command)
