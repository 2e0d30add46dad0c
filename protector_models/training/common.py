"""What every trainer shares."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import torch
from tqdm.auto import tqdm


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
    return str(path.resolve()) if path.is_dir() else source
