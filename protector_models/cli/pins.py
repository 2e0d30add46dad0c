"""``mllm-protector hash``: the SHA-256 pins of every file of a model directory, as config YAML."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
import yaml

from protector_models.cli.options import fail
from protector_models.errors import ModelLoadError
from protector_models.models.integrity import directory_pins


def pins_yaml(directory: Path) -> str:
    """The ``sha256:`` (or, for a PEFT adapter, ``adapter_sha256:``) mapping of every file under ``directory``."""
    if not directory.is_dir():
        raise ModelLoadError(f"{directory} is not a directory; give the model or adapter directory to pin")
    pins = directory_pins(directory)
    if not pins:
        raise ModelLoadError(f"{directory} holds no files to pin")
    adapter = "adapter_config.json" in pins
    where = "next to its `adapter`" if adapter else "next to its `source`"
    return f"# every file of {directory.absolute()}; paste {where} (e.g. under detector.model)\n" + yaml.safe_dump(
        {"adapter_sha256" if adapter else "sha256": pins}, sort_keys=False
    )


def hash_command(
    directory: Annotated[Path, typer.Argument(metavar="DIR", help="A model or PEFT adapter directory.")],
) -> None:
    """Print the SHA-256 of every file in DIR as YAML to paste into a config's model spec.

    With these pins, loading refuses the directory if any file changes, goes missing, or is added.
    """
    try:
        text = pins_yaml(directory)
    except (ModelLoadError, OSError) as error:
        raise fail(error) from None
    typer.echo(text, nl=False)


def register(app: typer.Typer) -> None:
    """Add ``hash`` to the command line."""
    app.command("hash", short_help="Print the SHA-256 pins of a model directory, as config YAML.")(hash_command)
