"""Building a protector from the options every subcommand shares."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from protector_models.config import ProtectorConfig


def build_config(
    config: Path | None,
    preset: str | None,
    *,
    threshold: float | None = None,
    device: str | None = None,
    batch_size: int | None = None,
) -> ProtectorConfig:
    """A config from ``--config`` or ``--preset`` (default: the embedded default), with overrides applied."""
    if config is not None and preset is not None:
        raise typer.BadParameter("give --config or --preset, not both")
    base = ProtectorConfig.from_yaml(config) if config else ProtectorConfig.from_preset(preset or "default")
    data: dict[str, Any] = base.model_dump()
    if threshold is not None:
        data["threshold"] = threshold
    if batch_size is not None:
        data["detector"]["batch_size"] = batch_size
    if device is not None:
        for section in ("detector", "rewriter"):
            if "model" in data[section]:
                data[section]["model"]["device"] = device
    return ProtectorConfig.from_dict(data)


def fail(error: Exception, code: int = 2) -> typer.Exit:
    """Print ``error: ...`` to stderr and give the exit to raise."""
    typer.echo(f"error: {error}", err=True)
    return typer.Exit(code)
