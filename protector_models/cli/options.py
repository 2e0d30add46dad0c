"""The options several subcommands share (one name and one help text each), and building a protector from them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from protector_models.config.presets import DEFAULT_THRESHOLD, PRESETS
from protector_models.config.schema import DEVICES, ProtectorConfig, check_device, check_threshold
from protector_models.errors import ConfigError, shown

ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="YAML config (docs/configuration.md). Default: --preset default.")
]
PresetOption = Annotated[
    str | None, typer.Option("--preset", help=f"Named preset instead of --config: {', '.join(PRESETS)}.")
]
ThresholdOption = Annotated[
    float | None,
    typer.Option(
        "--threshold",
        help="Flag answers whose harm score (0 to 1) is at or above this. Default: the config's or preset's "
        f"({DEFAULT_THRESHOLD} for `default`).",
    ),
]
BatchSizeOption = Annotated[
    int | None,
    typer.Option(
        "--batch-size",
        min=1,
        help="Inputs (answer windows) per detector forward pass. Default: the config's or preset's "
        f"({PRESETS['default']['detector']['batch_size']} for `default`).",
    ),
]
DeviceOption = Annotated[
    str | None, typer.Option("--device", help=f"{DEVICES}. Default: the config's or preset's (auto for `default`).")
]
QuestionKeyOption = Annotated[str, typer.Option("--question-key", help="The input field holding the question.")]
AnswerKeyOption = Annotated[str, typer.Option("--answer-key", help="The input field holding the answer.")]


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
    check_threshold(threshold, "--threshold")
    if device is not None:
        checked_device(device)
    overrides = {} if threshold is None else {"threshold": threshold}  # before validation: a remote config needs it
    base = (
        ProtectorConfig.from_yaml(config, **overrides)
        if config
        else ProtectorConfig.from_preset(preset or "default", **overrides)
    )
    data: dict[str, Any] = base.model_dump()
    if batch_size is not None:
        data["detector"]["batch_size"] = batch_size
    if device is not None:
        for section in ("detector", "rewriter"):
            if "model" in data[section]:
                data[section]["model"]["device"] = device
    return ProtectorConfig.from_dict(data)


def checked_device(device: str) -> str:
    """``--device``, or a :class:`ConfigError` worded as for a config file."""
    try:
        return check_device(device)
    except ValueError as error:
        raise ConfigError(f"--device: {error} (got {shown(device)})") from None


def split_names(values: list[str] | None) -> list[str]:
    """Names given as repeated options, comma-separated lists, or both."""
    return [name.strip() for value in values or [] for name in value.split(",") if name.strip()]


def fail(error: Exception, code: int = 2) -> typer.Exit:
    """Print ``error: ...`` to stderr and give the exit to raise."""
    typer.echo(f"error: {error}", err=True)
    return typer.Exit(code)
