"""The settings of a detector training run: plain data, importable without torch (the CLI reads its defaults)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from protector_models.config.presets import MINILM_ID

Mode = Literal["lora", "head", "full"]
Precision = Literal["float32", "bfloat16"]


@dataclass
class DetectorTrainingArgs:
    """Everything that decides a detector training run; saved beside the result."""

    output_dir: str
    base: str = MINILM_ID
    mode: Mode = "lora"
    epochs: int = 2
    max_steps: int | None = None
    """Stop after this many optimizer steps (the schedule decays over them), even mid-epoch."""
    init_adapter: str | None = None
    """Continue training this LoRA adapter (its rank and target modules are kept) instead of a fresh one."""
    learning_rate: float = 5e-4
    batch_size: int = 32
    """Inputs per step: a long answer's windows count one each."""
    forward_batch: int | None = None
    """At most this many windows per forward pass: a step's batch is run in parts of whole examples and their
    gradients summed, the same update with less memory. None: the whole batch at once."""
    max_length: int = 512
    window_tokens: int = 384
    window_stride: int = 256
    template: str = "auto"
    lora_rank: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.1
    """Dropout on LoRA inputs; 0 trains about 1.7x faster on CPU (drawing dropout masks dominates a LoRA step)."""
    lora_targets: list[str] = field(
        default_factory=lambda: ["query", "key", "value", "output.dense", "intermediate.dense"]
    )
    warmup_ratio: float = 0.06
    weight_decay: float = 0.01
    val_fraction: float = 0.1
    ranking_weight: float = 1.0
    """Weight of the pairwise ranking term (used when preference pairs are given)."""
    patience: int = 2
    """Stop after this many epochs without a better validation AUROC; the best epoch is the one saved."""
    precision: Precision = "float32"
    """``bfloat16`` runs forward passes under autocast (about 2x faster on CPUs with AMX); weights stay float32."""
    source_balance: float = 0.5
    """How evenly sources are sampled: 0 keeps their sizes' proportions, 1 samples every source equally often;
    in between, a source of n rows is drawn in proportion to n ** (1 - source_balance)."""
    source_weight: dict[str, float] = field(default_factory=dict)
    """Multiply these sources' sampling shares (keys are ``source`` names): 0.5 draws a source half as often as
    ``source_balance`` alone would, to keep a source whose rows teach a shortcut without letting it dominate."""
    question_dropout: float = 0.2
    """Share of training rows shown without their question, so answer-only use (``model | guard``) is learnt."""
    splice: float = 0.0
    """Rows added, as a share of the training split: short answers inserted into long benign ones, labelled by
    the inserted answer (see ``splicing``), so a harmful paragraph late in a long answer is learnt."""
    splice_same_source: bool = False
    """Draw each benign spliced passage from the source of the harmful one before it, so that an off-topic
    passage's source or subject does not tell the label; only harm does."""
    mismatch: float = 0.0
    """Rows added, as a share of the training split: answers after the question of an unrelated row, keeping the
    answer's label (see ``mismatching``), so the answer is judged and not the question."""
    chat_turns: float = 0.0
    """Rows added, as a share of the training split: generated benign short chat turns (greetings, thanks, "Sure!",
    clarifying questions), alone and after benign and harmful questions (see ``chat_turns``)."""
    written_harms: float = 0.0
    """Rows added, as a share of the training split: generated threats, self-harm encouragement and doxxing answers,
    each genre beside benign answers to the same requests (see ``written_harms``)."""
    seed: int = 0
    device: str = "auto"
    checkpoint_every: int | None = None
    """Save a resumable checkpoint in ``output_dir/checkpoint`` every this many steps (see ``checkpoints``)."""
