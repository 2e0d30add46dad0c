"""Training a detoxifier: a causal LM taught, with an autoregressive loss on the target's tokens only, to rewrite a
harmful answer into a harmless one that still answers the question (the paper's second model).

The prompt is the one the rewriter uses at inference (:func:`~protector_models.models.templates.detoxify_prompts`, cut
to the same token budget); the target follows it with EOS appended, and only the target and EOS carry loss.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections import Counter
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import yaml
from transformers import PreTrainedTokenizerBase, get_linear_schedule_with_warmup

from protector_models.config.schema import DEFAULT_REFUSAL, ModelSpec
from protector_models.detox.data import DetoxExample
from protector_models.models.batching import pad_features, shuffled_length_batches
from protector_models.models.loading import load_causal_lm
from protector_models.models.templates import detoxify_prompts
from protector_models.training.common import portable_source, seed_everything, training_progress, with_pins

DetoxMode = Literal["lora", "full"]
IGNORE = -100
"""The label of a position that carries no loss (prompt and padding)."""


@dataclass
class DetoxifierTrainingArgs:
    """Everything that decides a detoxifier training run; saved beside the result as training_args.json.

    ``max_length`` and ``max_target_tokens`` split the sequence as the rewriter splits it at inference: the
    prompt gets ``max_length - max_target_tokens`` tokens (the question is cut first), the target the rest. The
    saved config sets the rewriter's ``max_new_tokens`` to ``max_target_tokens`` so the two agree.
    """

    output_dir: str
    base: str
    mode: DetoxMode = "lora"
    epochs: int = 1
    max_steps: int | None = None
    """Optimizer steps to stop after (overrides ``epochs`` when set)."""
    learning_rate: float = 2e-4
    batch_size: int = 4
    grad_accum: int = 4
    max_length: int = 1024
    max_target_tokens: int = 256
    lora_rank: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_targets: list[str] | None = None
    """Module names to adapt; None: peft's default for the architecture (q_proj, v_proj for Llama)."""
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    bf16: bool = True
    """bf16 autocast on CUDA (where supported); ignored on CPU, where training runs in float32."""
    seed: int = 0
    device: str = "auto"
    refusal_text: str = DEFAULT_REFUSAL
    """The target of a harmful answer with no harmless counterpart; also the saved config's refusal_text."""
    data_files: list[str] = field(default_factory=list)
    """Where the examples came from (recorded in training_args.json and the model card)."""


@dataclass(frozen=True)
class DetoxifierTrainingOutcome:
    """Where the detoxifier was saved, its loss per optimizer step, and how much it saw."""

    output_dir: Path
    losses: list[float]
    steps: int
    examples: int
    target_tokens: int
    seconds: float


def encode_detox_examples(
    tokenizer: PreTrainedTokenizerBase,
    examples: Sequence[DetoxExample],
    *,
    max_length: int,
    max_target_tokens: int,
) -> dict[str, list[list[int]]]:
    """``input_ids``, ``attention_mask`` and ``labels`` per example: prompt, then target + EOS.

    The prompt is built and tokenized exactly as :class:`~protector_models.detox.rewriters.CausalLMRewriter` does with
    ``max_length`` and ``max_new_tokens = max_target_tokens``; its labels are :data:`IGNORE`. The target is cut
    to ``max_target_tokens - 1`` tokens so EOS always fits, and its labels equal its ids.
    """
    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer has no EOS token; a detoxifier must learn where its answer ends")
    if not 1 < max_target_tokens < max_length:
        raise ValueError(f"max_target_tokens ({max_target_tokens}) must be within (1, max_length={max_length})")
    budget = max_length - max_target_tokens
    prompts = detoxify_prompts(tokenizer, [example.pair for example in examples], budget)
    prompt_ids = tokenizer(prompts, truncation=True, max_length=budget)["input_ids"]
    target_ids = tokenizer([example.target for example in examples], add_special_tokens=False)["input_ids"]
    features: dict[str, list[list[int]]] = {"input_ids": [], "attention_mask": [], "labels": []}
    for prompt, target in zip(prompt_ids, target_ids, strict=True):
        answer = [*target[: max_target_tokens - 1], tokenizer.eos_token_id]
        features["input_ids"].append([*prompt, *answer])
        features["attention_mask"].append([1] * (len(prompt) + len(answer)))
        features["labels"].append([IGNORE] * len(prompt) + answer)
    return features


def target_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Summed next-token cross-entropy over the positions whose label is not :data:`IGNORE`."""
    return torch.nn.functional.cross_entropy(
        logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].flatten(), ignore_index=IGNORE, reduction="sum"
    )


def train_detoxifier(examples: Sequence[DetoxExample], args: DetoxifierTrainingArgs) -> DetoxifierTrainingOutcome:
    """Fine-tune ``args.base`` on ``examples`` (LoRA or full), save it where the rewriter config loads it."""
    if not examples:
        raise ValueError("no training examples")
    if args.batch_size < 1 or args.grad_accum < 1:
        raise ValueError("batch_size and grad_accum must be at least 1")
    started = time.perf_counter()
    seed_everything(args.seed)
    loaded = load_causal_lm(ModelSpec(source=args.base, device=args.device, dtype="float32"))
    tokenizer, device = loaded.tokenizer, loaded.device
    model = _prepare(loaded.model, args)
    features = encode_detox_examples(
        tokenizer, examples, max_length=args.max_length, max_target_tokens=args.max_target_tokens
    )
    lengths = [len(ids) for ids in features["input_ids"]]

    micro_per_epoch = math.ceil(len(examples) / args.batch_size)
    total = args.max_steps or math.ceil(micro_per_epoch / args.grad_accum) * args.epochs
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=args.learning_rate, weight_decay=args.weight_decay)
    schedule = get_linear_schedule_with_warmup(optimizer, int(args.warmup_ratio * total), total)
    autocast = _autocast(device, args.bf16)
    generator = random.Random(args.seed)
    losses: list[float] = []
    seen_tokens = 0
    model.train()
    progress = training_progress(total, "train-detoxifier")
    while len(losses) < total:
        batches = shuffled_length_batches(lengths, args.batch_size, generator)
        for start in range(0, len(batches), args.grad_accum):
            group = [
                pad_features(features, b, pad_token_id=tokenizer.pad_token_id)
                for b in batches[start:][: args.grad_accum]
            ]
            tokens = sum(int((batch["labels"][:, 1:] != IGNORE).sum()) for batch in group)
            step_loss = 0.0
            for batch in group:  # the loss is a mean over every target token of the accumulated group
                batch = {key: value.to(device) for key, value in batch.items()}
                with autocast:
                    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
                loss = target_loss(logits, batch["labels"]) / tokens
                loss.backward()
                step_loss += loss.item()
            torch.nn.utils.clip_grad_norm_(trainable, args.max_grad_norm)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(step_loss)
            seen_tokens += tokens
            progress.update()
            progress.set_postfix(loss=f"{sum(losses[-20:]) / len(losses[-20:]):.4f}")
            if len(losses) >= total:
                break
    progress.close()
    model.eval()
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    _save(model, tokenizer, args, output_dir, examples)
    return DetoxifierTrainingOutcome(
        output_dir, losses, len(losses), len(examples), seen_tokens, time.perf_counter() - started
    )


def _prepare(model: torch.nn.Module, args: DetoxifierTrainingArgs) -> torch.nn.Module:
    if args.mode == "full":
        return model
    if args.mode != "lora":
        raise ValueError(f"unknown mode {args.mode!r}; use lora or full")
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        task_type="CAUSAL_LM",
        r=args.lora_rank,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        target_modules=list(args.lora_targets) if args.lora_targets else None,
    )
    try:
        return get_peft_model(model, config)
    except ValueError as error:
        raise ValueError(f"{error} (name the modules to adapt with lora_targets / --lora-target)") from None


def _autocast(device: torch.device, bf16: bool) -> Any:
    """bf16 autocast on a CUDA device that supports it; nothing elsewhere (float32 master weights either way)."""
    if bf16 and device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return nullcontext()


def _save(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    args: DetoxifierTrainingArgs,
    output_dir: Path,
    examples: Sequence[DetoxExample],
) -> None:
    """LoRA: the adapter (merged into the base at load); full: model and tokenizer. Plus args, card, config."""
    base = portable_source(args.base)
    if args.mode == "lora":
        model.peft_config["default"].base_model_name_or_path = base  # type: ignore[union-attr,index]
        model.save_pretrained(output_dir, safe_serialization=True, save_embedding_layers=False)  # type: ignore[operator]
        spec = {"source": base, "adapter": str(output_dir.resolve()), "max_length": args.max_length}
    else:
        model.save_pretrained(output_dir, safe_serialization=True)  # type: ignore[operator]
        tokenizer.save_pretrained(output_dir)
        spec = {"source": str(output_dir.resolve()), "max_length": args.max_length}
    (output_dir / "training_args.json").write_text(json.dumps(asdict(args), indent=2) + "\n")
    (output_dir / "README.md").write_text(_model_card(args, examples))
    config = {
        "preset": "default",  # the detector: replace with your own `detector:` section if you have one
        "action": "detoxify",
        "rescore_rewrites": True,
        "refusal_text": args.refusal_text,
        "rewriter": {"kind": "causal_lm", "model": with_pins(spec), "max_new_tokens": args.max_target_tokens},
    }
    (output_dir / "protector.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def _model_card(args: DetoxifierTrainingArgs, examples: Sequence[DetoxExample]) -> str:
    sources = Counter(example.source or "unknown" for example in examples)
    refusals = sum(not example.reference for example in examples)
    lines = [
        "# Detoxifier trained with mllm-protector",
        "",
        f"- base: `{args.base}`; mode: {args.mode}; seed {args.seed}",
        f"- {len(examples)} examples ({refusals} with the refusal as target): "
        + ", ".join(f"{name} {count}" for name, count in sources.most_common()),
        f"- data files: {', '.join(args.data_files) or 'not recorded'}",
        "- load it with the `protector.yaml` beside this file (`Protector.from_yaml`, or `--config` on the CLI).",
        "",
        "## Licence",
        "",
        "A model inherits the terms of the data it was trained on.",
    ]
    if any("pku" in name.lower() for name in sources):
        lines.append(
            "PKU-SafeRLHF is licensed CC BY-NC 4.0: this model is for **non-commercial use only**, with attribution."
        )
    return "\n".join(lines) + "\n"
