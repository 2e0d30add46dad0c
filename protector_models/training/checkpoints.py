"""Resumable training: everything a run needs to go on where it stopped, saved atomically every few steps.

A checkpoint holds the trainable weights, the optimizer's and the schedule's state, torch's random state, the
steps' losses and the validation results so far, with the run's settings and a fingerprint of its data, so a run
is only ever continued with what it started with. Resuming replays the seeded batch order up to the saved step,
so an interrupted run ends with the same model as one that was never stopped.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from protector_models.data.labelled import LabelledPair, PreferencePair
from protector_models.errors import ProtectorError

CHECKPOINT_DIR = "checkpoint"
_STATE_FILE = "state.pt"
_RUN_FILE = "run.json"
_FREE_SETTINGS = ("output_dir", "checkpoint_every", "forward_batch", "device")
"""Settings a resumed run may change: where it is (a moved directory), how often it saves, and how it runs
(``forward_batch`` gives the same update)."""


@dataclass
class Progress:
    """What a run has done so far, beyond its weights and optimizer."""

    losses: list[float] = field(default_factory=list)
    epoch_aurocs: list[float | None] = field(default_factory=list)
    best_epoch: int = 0
    best_auroc: float = -1.0
    best_state: dict[str, torch.Tensor] | None = None
    val_scores: list[float] = field(default_factory=list)


def data_fingerprint(examples: Iterable[LabelledPair], preferences: Iterable[PreferencePair]) -> str:
    """A SHA-256 over every row's text, label and source, in order: the same files give the same value."""
    digest = hashlib.sha256()
    for example in examples:
        digest.update(json.dumps([example.question, example.answer, example.harmful, example.source]).encode())
    for preference in preferences:
        digest.update(json.dumps([preference.question, preference.better, preference.worse]).encode())
    return digest.hexdigest()


def run_identity(settings: dict[str, Any], fingerprint: str) -> dict[str, Any]:
    """The settings that decide what a run learns, and its data's fingerprint."""
    kept = {name: value for name, value in settings.items() if name not in _FREE_SETTINGS}
    return {"settings": kept, "data_sha256": fingerprint}


def save_checkpoint(
    output_dir: Path,
    identity: dict[str, Any],
    trainable: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
    progress: Progress,
) -> None:
    """Write ``output_dir/checkpoint``, replacing the last one only once the new one is whole."""
    state = {
        "trainable": trainable,
        "optimizer": optimizer.state_dict(),
        "schedule": schedule.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "progress": dict(vars(progress)),
    }
    directory = output_dir / CHECKPOINT_DIR
    directory.mkdir(parents=True, exist_ok=True)
    (directory / _RUN_FILE).write_text(json.dumps(identity, indent=2) + "\n")  # the same on every save
    partial = directory / f"{_STATE_FILE}.partial"
    torch.save(state, partial)
    partial.replace(directory / _STATE_FILE)  # atomic: a run killed while saving keeps its last checkpoint


def load_checkpoint(
    output_dir: Path,
    identity: dict[str, Any],
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
) -> Progress:
    """Restore a run saved by :func:`save_checkpoint` into ``model``, ``optimizer`` and ``schedule``; refuse one
    saved with other settings or data."""
    directory = output_dir / CHECKPOINT_DIR
    if not (directory / _STATE_FILE).is_file():
        raise ProtectorError(f"no checkpoint to resume in {directory}: run without --resume to start the run")
    saved = json.loads((directory / _RUN_FILE).read_text())
    _check_same_run(saved, identity, directory)
    state = torch.load(directory / _STATE_FILE, map_location="cpu", weights_only=True)  # tensors and plain data
    model.load_state_dict(state["trainable"], strict=False)
    optimizer.load_state_dict(state["optimizer"])
    schedule.load_state_dict(state["schedule"])
    torch.set_rng_state(state["torch_rng"])
    if state["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    return Progress(**state["progress"])


def refuse_to_overwrite(output_dir: Path) -> None:
    """A new run must not overwrite an unfinished one's checkpoint (hours of training) without being told."""
    directory = output_dir / CHECKPOINT_DIR
    if (directory / _STATE_FILE).is_file():
        raise ProtectorError(
            f"{directory} holds an unfinished run: pass --resume to continue it, or delete that directory to start over"
        )


def remove_checkpoint(output_dir: Path) -> None:
    """Delete the checkpoint once the finished model is saved (it is only for continuing)."""
    directory = output_dir / CHECKPOINT_DIR
    if directory.is_dir():
        shutil.rmtree(directory)


def _check_same_run(saved: dict[str, Any], identity: dict[str, Any], directory: Path) -> None:
    if saved["data_sha256"] != identity["data_sha256"]:
        raise ProtectorError(
            f"the checkpoint in {directory} was trained on other data: give the same files, in the same order"
        )
    saved_settings, settings = saved["settings"], identity["settings"]
    # a setting the checkpoint does not name was added since: its default keeps the old behaviour
    changed: Sequence[str] = sorted(
        name
        for name in saved_settings
        if name not in _FREE_SETTINGS and saved_settings[name] != settings.get(name)  # free now, if not then
    )
    if changed:
        details = ", ".join(f"{name} {saved_settings[name]!r} -> {settings.get(name)!r}" for name in changed)
        raise ProtectorError(
            f"the checkpoint in {directory} was saved with other settings ({details}): resume with the same ones"
        )
