"""``mllm-protector train-detector``: BCE (plus the paper's ranking term) on labelled pairs."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from protector_models.cli.options import AnswerKeyOption, QuestionKeyOption, checked_device, fail, split_names
from protector_models.config.schema import DEVICES
from protector_models.data.labelled import read_labelled, read_preferences
from protector_models.errors import ProtectorError
from protector_models.training.args import DetectorTrainingArgs, Mode, Precision

_DEFAULTS = DetectorTrainingArgs(output_dir="")


def train_detector_command(
    data: Annotated[
        list[Path],
        typer.Argument(metavar="DATA", help="Labelled JSON Lines (ours, PKU-SafeRLHF or BeaverTails rows)."),
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Directory to save the detector and its protector.yaml in.")
    ],
    preferences: Annotated[
        list[Path] | None,
        typer.Option("--preferences", metavar="FILE", help="Preference pairs for the ranking term (repeatable)."),
    ] = None,
    base: Annotated[str, typer.Option(help="Backbone: local dir, bundled model or hub id.")] = _DEFAULTS.base,
    mode: Annotated[Mode, typer.Option(help="lora, head (head only) or full fine-tune.")] = _DEFAULTS.mode,
    epochs: Annotated[int, typer.Option(min=1)] = _DEFAULTS.epochs,
    max_steps: Annotated[
        int | None, typer.Option(min=1, help="Stop after this many steps, even mid-epoch.")
    ] = _DEFAULTS.max_steps,
    init_adapter: Annotated[
        str | None,
        typer.Option(metavar="DIR", help="Continue training this LoRA adapter (its rank and targets are kept)."),
    ] = _DEFAULTS.init_adapter,
    learning_rate: Annotated[float, typer.Option("--lr")] = _DEFAULTS.learning_rate,
    batch_size: Annotated[int, typer.Option(min=1)] = _DEFAULTS.batch_size,
    forward_batch: Annotated[
        int | None,
        typer.Option(min=1, help="At most this many windows per forward pass (same update, less memory)."),
    ] = _DEFAULTS.forward_batch,
    max_length: Annotated[int, typer.Option(min=16, help="Tokens per model input.")] = _DEFAULTS.max_length,
    window_tokens: Annotated[
        int, typer.Option(min=8, help="Answer tokens per window; longer answers are read in windows.")
    ] = _DEFAULTS.window_tokens,
    window_stride: Annotated[int, typer.Option(min=1, help="Tokens between window starts.")] = _DEFAULTS.window_stride,
    lora_rank: Annotated[int, typer.Option(min=1)] = _DEFAULTS.lora_rank,
    lora_target: Annotated[
        list[str] | None,
        typer.Option(
            "--lora-target",
            metavar="NAME",
            help=f"Modules to adapt (repeat, or comma-separate). Default: {', '.join(_DEFAULTS.lora_targets)}.",
        ),
    ] = None,
    ranking_weight: Annotated[float, typer.Option(min=0.0)] = _DEFAULTS.ranking_weight,
    val_fraction: Annotated[float, typer.Option(min=0.0, max=0.9)] = _DEFAULTS.val_fraction,
    patience: Annotated[
        int, typer.Option(min=1, help="Epochs without a better validation AUROC before stopping.")
    ] = _DEFAULTS.patience,
    precision: Annotated[
        Precision, typer.Option(help="bfloat16: autocast forward passes (about 2x faster on CPUs with AMX).")
    ] = _DEFAULTS.precision,
    source_balance: Annotated[
        float,
        typer.Option(min=0.0, max=1.0, help="0: sample sources in proportion to size; 1: every source equally."),
    ] = _DEFAULTS.source_balance,
    source_weight: Annotated[
        list[str] | None,
        typer.Option(
            "--source-weight",
            metavar="SOURCE=W",
            help="Draw rows of this source W times as often as --source-balance alone would (repeatable).",
        ),
    ] = None,
    question_dropout: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of rows trained without their question.")
    ] = _DEFAULTS.question_dropout,
    splice: Annotated[
        float,
        typer.Option(min=0.0, max=1.0, help="Add this share of rows: short answers spliced into long benign ones."),
    ] = _DEFAULTS.splice,
    splice_same_source: Annotated[
        bool,
        typer.Option(
            "--splice-same-source",
            help="Draw each benign spliced passage from the harmful one's source: topic alone does not tell harm.",
        ),
    ] = _DEFAULTS.splice_same_source,
    mismatch: Annotated[
        float,
        typer.Option(min=0.0, max=1.0, help="Add this share of rows: answers after an unrelated row's question."),
    ] = _DEFAULTS.mismatch,
    chat_turns: Annotated[
        float,
        typer.Option(min=0.0, max=1.0, help="Add this share of rows: generated benign short chat turns."),
    ] = _DEFAULTS.chat_turns,
    written_harms: Annotated[
        float,
        typer.Option(
            min=0.0, max=1.0, help="Add this share of rows: threats, self-harm encouragement, doxxing, benign twins."
        ),
    ] = _DEFAULTS.written_harms,
    lora_dropout: Annotated[float, typer.Option(min=0.0, max=1.0)] = _DEFAULTS.lora_dropout,
    drop_category: Annotated[
        list[str] | None,
        typer.Option("--drop-category", metavar="NAME", help="Leave out rows of this `category` (repeatable)."),
    ] = None,
    checkpoint_every: Annotated[
        int | None,
        typer.Option(min=1, metavar="N", help="Save a resumable checkpoint in OUTPUT/checkpoint every N steps."),
    ] = _DEFAULTS.checkpoint_every,
    resume: Annotated[
        bool, typer.Option("--resume", help="Go on from OUTPUT/checkpoint (same data and settings).")
    ] = False,
    seed: Annotated[int, typer.Option()] = _DEFAULTS.seed,
    device: Annotated[str, typer.Option(help=f"{DEVICES}.")] = _DEFAULTS.device,
    question_key: QuestionKeyOption = "question",
    answer_key: AnswerKeyOption = "answer",
) -> None:
    """Train a detector; the threshold is picked on a validation split carved from DATA (never from dev)."""
    try:
        checked_device(device)
        dropped = set(drop_category or [])
        examples = [
            pair
            for path in data
            for pair in read_labelled(path, question_key=question_key, answer_key=answer_key)
            if pair.category not in dropped
        ]
        pairs = [pair for path in preferences or [] for pair in read_preferences(path)]
        args = DetectorTrainingArgs(
            output_dir=str(output),
            base=base,
            mode=mode,
            epochs=epochs,
            max_steps=max_steps,
            init_adapter=init_adapter,
            learning_rate=learning_rate,
            batch_size=batch_size,
            forward_batch=forward_batch,
            max_length=max_length,
            window_tokens=window_tokens,
            window_stride=window_stride,
            lora_rank=lora_rank,
            lora_alpha=2 * lora_rank,
            lora_targets=split_names(lora_target) or _DEFAULTS.lora_targets,
            ranking_weight=ranking_weight,
            val_fraction=val_fraction,
            patience=patience,
            precision=precision,
            source_balance=source_balance,
            source_weight=parse_source_weights(source_weight or []),
            question_dropout=question_dropout,
            splice=splice,
            splice_same_source=splice_same_source,
            mismatch=mismatch,
            chat_turns=chat_turns,
            written_harms=written_harms,
            lora_dropout=lora_dropout,
            seed=seed,
            device=device,
            checkpoint_every=checkpoint_every,
        )
        from protector_models.training.detector import train_detector  # torch: only once a run starts

        started = time.perf_counter()
        outcome = train_detector(examples, args, pairs, resume=resume)
    except (ProtectorError, OSError, ValueError) as error:
        raise fail(error) from None
    summary = {
        "output_dir": str(outcome.output_dir),
        "examples": len(examples),
        "preference_pairs": len(pairs),
        "seconds": round(time.perf_counter() - started),
        "best_epoch": outcome.best_epoch,
        "epoch_aurocs": [None if a is None else round(a, 4) for a in outcome.epoch_aurocs],
        "threshold": round(outcome.threshold, 4),
        "validation": outcome.validation.as_dict(),
    }
    if outcome.spliced_validation is not None:
        summary["spliced_validation"] = outcome.spliced_validation.as_dict()
    if outcome.mismatched_validation is not None:
        summary["mismatched_validation"] = outcome.mismatched_validation.as_dict()
    typer.echo(json.dumps(summary, indent=2))
    typer.echo(
        f"use it with: mllm-protector scan INPUT -o OUTPUT --config {outcome.output_dir / 'protector.yaml'}", err=True
    )


def parse_source_weights(values: list[str]) -> dict[str, float]:
    """``SOURCE=W`` options as a mapping; a malformed one is refused, naming it and the form expected."""
    weights = {}
    for value in values:
        source, _, weight = value.rpartition("=")
        try:
            number = float(weight)
        except ValueError:
            number = None
        if number is None or not source.strip():
            raise ValueError(f"--source-weight takes SOURCE=WEIGHT, like refusal_direction_jbb=0.5; got '{value}'")
        weights[source.strip()] = number
    return weights


def register(app: typer.Typer) -> None:
    """Add ``train-detector`` to the command line."""
    app.command("train-detector", short_help="Train a harm detector on labelled pairs.")(train_detector_command)
