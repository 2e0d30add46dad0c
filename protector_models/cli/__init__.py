"""The ``mllm-protector`` command line: each subcommand lives in its own module."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Annotated

import typer

from protector_models.cli import detox, evaluate, pins, scan, serve, train

app = typer.Typer(
    name="mllm-protector",
    help="Guard (question, answer) pairs with MLLM-Protector: score, refuse or rewrite harmful answers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help that wraps cleanly at any width, and plain error messages
)


def _print_version(value: bool) -> None:
    if value:
        try:
            typer.echo(f"mllm-protector {version('mllm-protector')}")
        except PackageNotFoundError:
            typer.echo("mllm-protector (not installed: run `pip install .` in the clone for a version)")
        raise typer.Exit()


@app.callback()
def main(
    _version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Guard (question, answer) pairs with MLLM-Protector."""


scan.register(app)
evaluate.register(app)
train.register(app)
detox.register(app)
pins.register(app)
serve.register(app)

__all__ = ["app"]
