"""``mllm-protector train-detoxifier`` and ``mllm-protector eval-detox``: train and measure a detoxifier."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from protector_models.cli.options import (
    BatchSizeOption,
    ConfigOption,
    DeviceOption,
    PresetOption,
    ThresholdOption,
    build_config,
    checked_device,
    fail,
    split_names,
)
from protector_models.config.schema import DEFAULT_REFUSAL, DEVICES, CausalLMRewriterConfig, RewriterConfig
from protector_models.detox.data import SHAPES, read_detox_examples, read_harmful_pairs
from protector_models.errors import InvalidInputError, ProtectorError
from protector_models.protector import Protector


def train_detoxifier_command(
    data: Annotated[
        list[Path],
        typer.Argument(
            metavar="DATA",
            help="JSON Lines: detox triples, PKU-SafeRLHF rows, or labelled pairs (question, answer, harmful).",
        ),
    ],
    base: Annotated[str, typer.Option("--base", help="Causal LM to fine-tune: local directory or hub id.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to save the model and its protector.yaml.")],
    shape: Annotated[str, typer.Option("--shape", help=f"Data shape: {', '.join(SHAPES)}.")] = "auto",
    mode: Annotated[str, typer.Option("--mode", help="lora (an adapter) or full (the whole model).")] = "lora",
    epochs: Annotated[int, typer.Option("--epochs", min=1)] = 1,
    max_steps: Annotated[int | None, typer.Option("--max-steps", min=1, help="Stop after this many steps.")] = None,
    learning_rate: Annotated[float, typer.Option("--lr", min=0.0)] = 2e-4,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 4,
    grad_accum: Annotated[int, typer.Option("--grad-accum", min=1, help="Micro-batches per optimizer step.")] = 4,
    max_length: Annotated[int, typer.Option("--max-length", min=16, help="Prompt + target tokens.")] = 1024,
    max_target_tokens: Annotated[
        int, typer.Option("--max-target-tokens", min=2, help="Target tokens (EOS included); max_new_tokens at use.")
    ] = 256,
    lora_rank: Annotated[int, typer.Option("--lora-rank", min=1)] = 16,
    lora_alpha: Annotated[int, typer.Option("--lora-alpha", min=1)] = 32,
    lora_target: Annotated[
        list[str] | None,
        typer.Option(
            "--lora-target",
            metavar="NAME",
            help="Modules to adapt (repeat, or comma-separate); default: peft's choice.",
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    device: Annotated[str, typer.Option("--device", help=f"{DEVICES}.")] = "auto",
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Train on the first N examples.")] = None,
    refusal_text: Annotated[
        str, typer.Option("--refusal-text", help="Target when a harmful answer has no harmless counterpart.")
    ] = DEFAULT_REFUSAL,
) -> None:
    """Fine-tune a causal LM to rewrite harmful answers (loss on the target tokens only) and save it with a
    protector.yaml that loads it as the rewriter.
    """
    from protector_models.training.detoxifier import DetoxifierTrainingArgs, train_detoxifier

    if mode not in ("lora", "full"):
        raise typer.BadParameter(f"--mode must be lora or full, got {mode!r}")
    if max_target_tokens >= max_length:
        raise typer.BadParameter(f"--max-target-tokens ({max_target_tokens}) must be below --max-length ({max_length})")
    try:
        checked_device(device)
        examples = [e for path in data for e in read_detox_examples(path, shape=shape, refusal_text=refusal_text)]
        if limit is not None:
            examples = examples[:limit]
        if not examples:
            raise InvalidInputError(f"no training examples in {', '.join(map(str, data))} (both-safe rows are skipped)")
        args = DetoxifierTrainingArgs(
            output_dir=str(output),
            base=base,
            mode=mode,  # type: ignore[arg-type]
            epochs=epochs,
            max_steps=max_steps,
            learning_rate=learning_rate,
            batch_size=batch_size,
            grad_accum=grad_accum,
            max_length=max_length,
            max_target_tokens=max_target_tokens,
            lora_rank=lora_rank,
            lora_alpha=lora_alpha,
            lora_targets=split_names(lora_target) or None,
            seed=seed,
            device=device,
            refusal_text=refusal_text,
            data_files=[str(path) for path in data],
        )
        outcome = train_detoxifier(examples, args)
    except (ProtectorError, OSError) as error:
        raise fail(error) from None
    except ValueError as error:
        raise fail(InvalidInputError(str(error))) from None
    first, last = outcome.losses[0], sum(outcome.losses[-10:]) / len(outcome.losses[-10:])
    typer.echo(
        f"trained on {outcome.examples} examples: {outcome.steps} steps, {outcome.target_tokens} target tokens, "
        f"loss {first:.3f} -> {last:.3f} (mean of the last 10 steps) in {outcome.seconds:.0f}s",
        err=True,
    )
    typer.echo(f"saved to {outcome.output_dir}; use it with --config {outcome.output_dir / 'protector.yaml'}")


def eval_detox_command(
    data: Annotated[
        Path,
        typer.Argument(
            metavar="FILE", help="JSON Lines: detox triples, PKU-SafeRLHF rows, or question/answer records."
        ),
    ],
    config: ConfigOption = None,
    preset: PresetOption = None,
    threshold: ThresholdOption = None,
    batch_size: BatchSizeOption = None,
    device: DeviceOption = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Measure the first N pairs.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable figures.")] = False,
    report: Annotated[
        Path | None, typer.Option("--report", help="Write metrics.json, rewrites.jsonl and detox_eval.png here.")
    ] = None,
) -> None:
    """Rewrite harmful answers with the configured rewriter and measure the rewrites: share the detector scores
    harmless, relevance to the question (MiniLM cosine), bare refusals, lengths.
    """
    from protector_models.detox.evaluation import evaluate_detox, render, write_report

    try:
        built = build_config(config, preset, threshold=threshold, device=device, batch_size=batch_size)
        pairs, references = read_harmful_pairs(data)
        if limit is not None:
            pairs, references = pairs[:limit], references[:limit]
        if not pairs:
            raise InvalidInputError(f"{data}: no harmful pairs to rewrite")
        protector = Protector.from_config(built).load()
        evaluation = evaluate_detox(protector, pairs, references, rewriter_name=_describe(built.rewriter))
        written = write_report(evaluation, report) if report is not None else []
    except (ProtectorError, OSError) as error:
        raise fail(error) from None
    if as_json:
        typer.echo(json.dumps({"data": str(data), **evaluation.as_dict()}, indent=2))
    else:
        typer.echo(render(data.name, evaluation))
    for path in written:
        typer.echo(f"wrote {path}", err=True)


def _describe(rewriter: RewriterConfig) -> str:
    if isinstance(rewriter, CausalLMRewriterConfig):
        adapter = f" + {rewriter.model.adapter}" if rewriter.model.adapter else ""
        return f"causal_lm ({rewriter.model.source}{adapter})"
    return rewriter.kind


def register(app: typer.Typer) -> None:
    """Add ``train-detoxifier`` and ``eval-detox`` to the command line."""
    app.command("train-detoxifier", short_help="Fine-tune a causal LM to rewrite harmful answers.")(
        train_detoxifier_command
    )
    app.command("eval-detox", short_help="Measure a rewriter on harmful answers.")(eval_detox_command)
