"""Training a harm detector with binary cross-entropy, as in the paper, saved in the format the loader reads."""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import cast

import torch
import yaml
from torch.nn.functional import binary_cross_entropy_with_logits as bce
from transformers import PreTrainedModel, get_linear_schedule_with_warmup

from protector_models.config.schema import ModelSpec
from protector_models.data.labelled import LabelledPair, PreferencePair
from protector_models.evaluation.metrics import BinaryMetrics, auroc, binary_metrics, source_balanced_threshold
from protector_models.models.batching import packed_batches, pad_features
from protector_models.models.detector import ClassifierDetector
from protector_models.models.loading import load_sequence_classifier, resolve_adapter
from protector_models.models.windows import PairEncoder
from protector_models.pairs import Pair
from protector_models.training.args import DetectorTrainingArgs as DetectorTrainingArgs  # re-exported
from protector_models.training.chat_turns import chat_turn_examples
from protector_models.training.checkpoints import (
    CHECKPOINT_DIR,
    Progress,
    data_fingerprint,
    load_checkpoint,
    refuse_to_overwrite,
    remove_checkpoint,
    run_identity,
    save_checkpoint,
)
from protector_models.training.common import portable_source, seed_everything, training_progress, with_pins
from protector_models.training.mismatching import mismatched_examples, validation_mismatched
from protector_models.training.splicing import spliced_examples, validation_spliced
from protector_models.training.written_harms import written_harm_examples

_HEAD_MODULES = ("classifier", "score", "pooler")


@dataclass(frozen=True)
class TrainingOutcome:
    """Where the detector was saved, the threshold picked on the validation split, and its metrics there."""

    output_dir: Path
    threshold: float
    validation: BinaryMetrics
    losses: list[float]
    best_epoch: int
    """The epoch whose weights were saved (the last one when there is no validation split)."""
    epoch_aurocs: list[float | None]
    """Validation AUROC after each epoch that ran."""
    spliced_validation: BinaryMetrics | None = None
    """With ``splice``: the metrics on spliced validation rows, which the threshold rule also weighs."""
    mismatched_validation: BinaryMetrics | None = None
    """With ``mismatch``: the metrics on mismatched validation rows, which the threshold rule also weighs."""


def ranking_loss(worse_logits: torch.Tensor, better_logits: torch.Tensor) -> torch.Tensor:
    """The paper's pairwise term on harm scores: low when the more harmful answer scores higher."""
    return -torch.nn.functional.logsigmoid(worse_logits - better_logits).mean()


def train_detector(
    examples: Sequence[LabelledPair],
    args: DetectorTrainingArgs,
    preferences: Sequence[PreferencePair] = (),
    resume: bool = False,
) -> TrainingOutcome:
    """Train with BCE on ``examples`` (a validation split is carved from them), plus the ranking term on
    ``preferences`` when given; save in the loader's format, and report validation metrics. ``resume`` goes on
    from the checkpoint in ``args.output_dir``, to the same result as a run never stopped.

    A long answer is read in windows, as at inference, and its logit is the highest of its windows' logits.
    """
    if not examples:
        raise ValueError("no training examples")
    _check_args(args)
    output_dir = Path(args.output_dir)
    identity = run_identity(asdict(args), data_fingerprint(examples, preferences))
    if not resume:
        refuse_to_overwrite(output_dir)
    seed_everything(args.seed)
    train, validation = split_validation(examples, args.val_fraction, args.seed)
    train += [
        *spliced_examples(train, args.splice, args.seed, same_source=args.splice_same_source),
        *mismatched_examples(train, args.mismatch, args.seed),
        *chat_turn_examples(train, args.chat_turns, args.seed),
        *written_harm_examples(train, args.written_harms, args.seed),
    ]
    weights = source_weights([e.source for e in train], args.source_balance, args.source_weight)
    spec = ModelSpec(source=args.base, device=args.device, dtype="float32", max_length=args.max_length)
    loaded = load_sequence_classifier(spec, allow_untrained_head=True)
    model = _prepare(loaded.model, args)
    scorer = ClassifierDetector(
        cast(PreTrainedModel, model),
        loaded.tokenizer,
        template=args.template,
        max_length=args.max_length,
        window_tokens=args.window_tokens,
        window_stride=args.window_stride,
        batch_size=args.batch_size * 2,
    )
    inputs = _Encoded.of(scorer.encoder, drop_questions(train, args.question_dropout, args.seed))
    labels = torch.tensor([float(e.harmful) for e in train])
    ranked = _preference_batches(preferences, scorer.encoder, args) if preferences else None

    generator = random.Random(args.seed)
    steps_per_epoch = len(_epoch_batches(inputs, weights, args.batch_size, random.Random(args.seed)))
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=args.learning_rate, weight_decay=args.weight_decay)
    total = min(steps_per_epoch * args.epochs, args.max_steps or steps_per_epoch * args.epochs)
    schedule = get_linear_schedule_with_warmup(optimizer, int(args.warmup_ratio * total), total)
    autocast = torch.autocast(loaded.device.type, dtype=torch.bfloat16, enabled=args.precision == "bfloat16")

    def harm_logits(encoded: _Encoded, indices: Sequence[int]) -> torch.Tensor:
        """One logit per example: the highest of its windows'."""
        batch = pad_features(encoded.features, encoded.rows(indices), pad_token_id=loaded.tokenizer.pad_token_id)
        with autocast:
            logits = model(**{k: v.to(loaded.device) for k, v in batch.items()}).logits[:, 0].float()
        return torch.stack([part.max() for part in logits.split(encoded.counts(indices))])

    val_pairs, val_labels = [e.pair for e in validation], [e.harmful for e in validation]
    val_sources = [e.source for e in validation]
    run = load_checkpoint(output_dir, identity, model, optimizer, schedule) if resume else Progress()
    resumed_steps, step = len(run.losses), 0
    progress = training_progress(total, "train-detector")
    progress.update(resumed_steps)
    for epoch in range(1, args.epochs + 1):
        model.train()
        for batch_indices in _epoch_batches(inputs, weights, args.batch_size, generator)[: total - step]:
            step += 1
            ranking_batch = next(ranked) if ranked is not None and args.ranking_weight > 0 else None
            if step <= resumed_steps:
                continue  # done before the checkpoint: the batch order is replayed, not trained again
            step_loss = 0.0
            for part in forward_chunks(inputs.counts(batch_indices), args.forward_batch):
                chunk = batch_indices[part]
                logits = harm_logits(inputs, chunk)
                targets = labels[chunk].to(loaded.device)
                loss = bce(logits, targets, reduction="sum") / len(batch_indices)  # the batch mean, in parts
                loss.backward()  # each part's graph is freed before the next is built
                step_loss += loss.item()
            if ranking_batch is not None:
                encoded, indices = ranking_batch
                half = len(indices) // 2  # the worse answers first, then the better
                worse_all, better_all = indices[:half], indices[half:]
                pair_windows = [sum(c) for c in zip(encoded.counts(worse_all), encoded.counts(better_all), strict=True)]
                for part in forward_chunks(pair_windows, args.forward_batch):
                    worse, better = harm_logits(encoded, worse_all[part] + better_all[part]).chunk(2)
                    ranking = args.ranking_weight * ranking_loss(worse, better) * len(worse) / half
                    ranking.backward()
                    step_loss += ranking.item()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            run.losses.append(step_loss)
            progress.update()
            progress.set_postfix(loss=f"{sum(run.losses[-50:]) / len(run.losses[-50:]):.4f}")
            if args.checkpoint_every and step % args.checkpoint_every == 0 and step < total:
                save_checkpoint(output_dir, identity, _trainable_state(model), optimizer, schedule, run)
        if not validation or len(run.epoch_aurocs) >= epoch:  # none, or done before the checkpoint
            continue
        model.eval()
        scores = scorer.score(val_pairs)
        epoch_auroc = auroc(val_labels, scores)
        run.epoch_aurocs.append(epoch_auroc)
        progress.write(f"epoch {epoch}: validation AUROC {epoch_auroc}")
        if epoch_auroc is None:  # one class in validation: nothing to compare, the last epoch is saved
            run.val_scores = scores
        elif epoch_auroc > run.best_auroc:
            run.best_epoch, run.best_auroc, run.best_state = epoch, epoch_auroc, _trainable_state(model)
            run.val_scores = scores
        elif epoch - run.best_epoch >= args.patience:
            break
        if step >= total:
            break
    progress.close()
    model.eval()
    if run.best_state is not None:
        model.load_state_dict(run.best_state, strict=False)

    output_dir.mkdir(parents=True, exist_ok=True)
    # trained to read long answers and to judge the answer: the threshold rule weighs both too, with rows spliced
    # and mismatched from validation rows as one more source each
    spliced = validation_spliced(validation) if args.splice else []
    mismatched = validation_mismatched(validation) if args.mismatch else []
    extra = spliced + mismatched
    extra_labels, extra_scores = [e.harmful for e in extra], scorer.score([e.pair for e in extra])
    threshold = 0.5
    if validation:
        threshold = source_balanced_threshold(
            val_labels + extra_labels, run.val_scores + extra_scores, val_sources + [e.source for e in extra]
        )
    _save(model, loaded.tokenizer, args, output_dir, scorer.template, threshold)
    remove_checkpoint(output_dir)
    metrics = binary_metrics(val_labels, run.val_scores, threshold)
    cut = len(spliced)
    spliced_metrics = binary_metrics(extra_labels[:cut], extra_scores[:cut], threshold) if spliced else None
    mismatched_metrics = binary_metrics(extra_labels[cut:], extra_scores[cut:], threshold) if mismatched else None
    best_epoch = run.best_epoch if run.best_state is not None else args.epochs
    return TrainingOutcome(
        output_dir,
        threshold,
        metrics,
        run.losses,
        best_epoch,
        run.epoch_aurocs,
        spliced_validation=spliced_metrics,
        mismatched_validation=mismatched_metrics,
    )


@dataclass(frozen=True)
class _Encoded:
    """Windows of a set of pairs: features (one row per window) and, per pair, its rows."""

    features: dict[str, list[list[int]]]
    starts: list[int]
    """Pair i owns rows ``starts[i]:starts[i + 1]``."""
    lengths: list[int]
    """Per pair, its windows' total tokens (a sort key for batching)."""

    @classmethod
    def of(cls, encoder: PairEncoder, pairs: Sequence[Pair]) -> _Encoded:
        features, owners = encoder.encode(pairs)
        starts = [0] * (len(pairs) + 1)
        lengths = [0] * len(pairs)
        for owner, ids in zip(owners, features["input_ids"], strict=True):
            starts[owner + 1] += 1
            lengths[owner] += len(ids)
        for index in range(len(pairs)):
            starts[index + 1] += starts[index]
        return cls(features, starts, lengths)

    def counts(self, indices: Sequence[int]) -> list[int]:
        return [self.starts[i + 1] - self.starts[i] for i in indices]

    def rows(self, indices: Sequence[int]) -> list[int]:
        return [row for i in indices for row in range(self.starts[i], self.starts[i + 1])]


def _epoch_batches(
    inputs: _Encoded, weights: Sequence[float] | None, batch_size: int, generator: random.Random
) -> list[list[int]]:
    """One epoch: every example once in a random order, or as many draws weighted by source; packed so a batch
    holds at most ``batch_size`` windows."""
    count = len(inputs.lengths)
    if weights is None:
        order = list(range(count))
        generator.shuffle(order)
    else:
        order = generator.choices(range(count), weights=weights, k=count)
    return packed_batches(order, inputs.lengths, inputs.counts(range(count)), batch_size, generator)


def forward_chunks(window_counts: Sequence[int], limit: int | None) -> list[slice]:
    """Consecutive runs of examples holding at most ``limit`` windows each (an example with more runs alone)."""
    if limit is None:
        return [slice(0, len(window_counts))]
    chunks, start, held = [], 0, 0
    for index, count in enumerate(window_counts):
        if held and held + count > limit:
            chunks.append(slice(start, index))
            start, held = index, 0
        held += count
    chunks.append(slice(start, len(window_counts)))
    return chunks


def source_weights(
    sources: Sequence[str], balance: float, scale: Mapping[str, float] | None = None
) -> list[float] | None:
    """Per-example sampling weights giving a source of n rows a share proportional to n ** (1 - balance), times
    its ``scale`` (1 when not named); None when that is plain shuffling (``balance`` 0 or one source, no scale)."""
    sizes = Counter(sources)
    scale = scale or {}
    unknown = sorted(set(scale) - set(sizes))
    if unknown:
        known = sorted(sizes)
        raise ValueError(f"source_weight names sources with no training rows: {unknown}; the sources are {known}")
    if not scale and (balance == 0 or len(sizes) < 2):
        return None
    return [scale.get(source, 1.0) * sizes[source] ** (1.0 - balance) / sizes[source] for source in sources]


def drop_questions(examples: Sequence[LabelledPair], share: float, seed: int) -> list[Pair]:
    """The examples' pairs, a seeded ``share`` of them with the question left out."""
    generator = random.Random(seed + 2)
    dropped = set(generator.sample(range(len(examples)), round(share * len(examples))))
    return [Pair("", e.answer) if i in dropped else e.pair for i, e in enumerate(examples)]


def _check_args(args: DetectorTrainingArgs) -> None:
    """Refuse settings out of range before any model loads (``splice`` is checked by ``spliced_examples``)."""
    for name in ("source_balance", "question_dropout", "lora_dropout"):
        value = getattr(args, name)
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be within [0, 1], got {value}")
    for source, weight in args.source_weight.items():
        if not weight > 0:
            raise ValueError(
                f"source_weight for '{source}' must be above 0, got {weight} (to leave a source out, drop its rows)"
            )
    if args.init_adapter is not None and args.mode != "lora":
        raise ValueError(f"init_adapter continues a LoRA adapter: it needs mode 'lora', not '{args.mode}'")
    if args.forward_batch is not None and args.forward_batch < 1:
        raise ValueError(f"forward_batch must be at least 1, got {args.forward_batch}")
    if args.checkpoint_every is not None and args.checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be at least 1, got {args.checkpoint_every}")
    if args.max_steps is not None and args.max_steps < 1:
        raise ValueError(f"max_steps must be at least 1, got {args.max_steps}")


def _trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A copy of the parameters training changes (frozen ones never move, so they need no copy)."""
    return {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}


def split_validation(
    examples: Sequence[LabelledPair], fraction: float, seed: int
) -> tuple[list[LabelledPair], list[LabelledPair]]:
    """A seeded split, stratified by (source, label) so every source is seen in validation. Each group is
    shuffled by its own seeded generator, so a source's validation rows do not depend on the other files."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {fraction}")
    groups: dict[tuple[str, bool], list[LabelledPair]] = {}
    for example in examples:
        groups.setdefault((example.source, example.harmful), []).append(example)
    train, validation = [], []
    for (source, harmful), members in sorted(groups.items()):
        members = members[:]
        random.Random(f"{seed}:{source}:{harmful}").shuffle(members)
        cut = round(len(members) * fraction)
        validation.extend(members[:cut])
        train.extend(members[cut:])
    return train, validation


def _prepare(model: PreTrainedModel, args: DetectorTrainingArgs) -> torch.nn.Module:
    """Freeze what the mode leaves untouched; wrap in LoRA for ``lora``."""
    heads = [name for name in _HEAD_MODULES if _has_module(model, name)]
    if args.mode == "full":
        return model
    if args.mode == "head":
        for name, parameter in model.named_parameters():
            parameter.requires_grad = any(f".{head}." in f".{name}" for head in heads)
        return model
    from peft import LoraConfig, PeftModel, get_peft_model

    if args.init_adapter is not None:
        adapter_dir = resolve_adapter(ModelSpec(source=args.base, adapter=args.init_adapter))
        saved = LoraConfig.from_pretrained(adapter_dir)
        saved.lora_dropout = args.lora_dropout
        saved.inference_mode = False
        return PeftModel.from_pretrained(model, adapter_dir, is_trainable=True, config=saved)
    config = LoraConfig(
        task_type="SEQ_CLS",
        r=args.lora_rank,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        target_modules=list(args.lora_targets),
        modules_to_save=heads,
    )
    return get_peft_model(model, config)


def _save(
    model: torch.nn.Module,
    tokenizer: object,
    args: DetectorTrainingArgs,
    output_dir: Path,
    template: str,
    threshold: float,
) -> None:
    """LoRA: the adapter (with the head); head/full: the whole model. Plus args and a ready config."""
    if args.mode == "lora":
        base = portable_source(args.base)
        model.peft_config["default"].base_model_name_or_path = base  # type: ignore[union-attr,index]
        model.save_pretrained(output_dir, safe_serialization=True, save_embedding_layers=False)  # type: ignore[operator]
        spec = {"source": base, "adapter": str(output_dir.resolve()), "max_length": args.max_length}
    else:
        model.save_pretrained(output_dir, safe_serialization=True)  # type: ignore[operator]
        tokenizer.save_pretrained(output_dir)  # type: ignore[attr-defined]
        spec = {"source": str(output_dir.resolve()), "max_length": args.max_length}
    (output_dir / "training_args.json").write_text(json.dumps(asdict(args), indent=2) + "\n")
    detector = {
        "kind": "classifier",
        "model": with_pins(spec, leave_out=output_dir / CHECKPOINT_DIR),  # the checkpoint is removed next
        "template": template,
        "window_tokens": args.window_tokens,
        "window_stride": args.window_stride,
    }
    config = {
        "detector": detector,
        "threshold": round(threshold, 4),
    }
    (output_dir / "protector.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def _preference_batches(
    preferences: Sequence[PreferencePair], encoder: PairEncoder, args: DetectorTrainingArgs
) -> Iterator[tuple[_Encoded, list[int]]]:
    """Endless shuffled batches of preference pairs: the worse answers first, then the better ones."""
    pairs = [Pair(p.question, p.worse) for p in preferences] + [Pair(p.question, p.better) for p in preferences]
    encoded = _Encoded.of(encoder, pairs)
    count, size = len(preferences), max(1, args.batch_size // 2)
    generator = random.Random(args.seed + 1)
    while True:
        order = list(range(count))
        generator.shuffle(order)
        for start in range(0, count, size):
            chunk = order[start : start + size]
            yield encoded, chunk + [i + count for i in chunk]


def _has_module(model: torch.nn.Module, name: str) -> bool:
    return any(module_name.split(".")[-1] == name for module_name, _ in model.named_modules())
