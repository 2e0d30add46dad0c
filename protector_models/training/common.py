"""What every trainer shares."""

from __future__ import annotations

import random
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from protector_models.config.presets import BUNDLED_IDS
from protector_models.models.integrity import directory_pins


def seed_everything(seed: int) -> None:
    """Seed Python's and torch's generators (CPU and CUDA)."""
    random.seed(seed)
    torch.manual_seed(seed)


def training_progress(total: int, desc: str) -> tqdm:
    """A step progress bar on stderr: live on a terminal; in a log file, one update a minute, so a long run
    sent to a file (``nohup``, CI) still shows how far it is."""
    interactive = sys.stderr.isatty()
    return tqdm(total=total, desc=desc, unit="step", file=sys.stderr, mininterval=0.1 if interactive else 60.0)


def portable_source(source: str) -> str:
    """An existing local directory as an absolute path, so a saved config works from any directory and when its
    sections are copied into another file; anything else (a hub or bundled id) as given."""
    path = Path(source).expanduser()
    return str(path.resolve()) if source not in BUNDLED_IDS and path.is_dir() else source


def with_pins(spec: Mapping[str, Any], *, leave_out: Path | None = None) -> dict[str, Any]:
    """A model spec as a trainer writes it, with every file of each local directory it names pinned (``sha256``,
    ``adapter_sha256``), so loading it refuses a file changed after training. Bundled ids are pinned already and
    hub ids stay as given; the files under ``leave_out`` (a checkpoint about to be removed) are not pinned."""
    pinned = dict(spec)
    for key, pins_key in (("source", "sha256"), ("adapter", "adapter_sha256")):
        value = spec.get(key)
        if isinstance(value, str) and value not in BUNDLED_IDS and Path(value).is_dir():
            pinned[pins_key] = _pins(Path(value).resolve(), leave_out.resolve() if leave_out else None)
    return pinned


def _pins(directory: Path, leave_out: Path | None) -> dict[str, str]:
    pins = directory_pins(directory)
    if leave_out is None or not leave_out.is_relative_to(directory):
        return pins
    folder = leave_out.relative_to(directory).as_posix() + "/"
    return {name: digest for name, digest in pins.items() if not name.startswith(folder)}
