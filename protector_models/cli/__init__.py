"""The ``mllm-protector`` command line: each subcommand lives in its own module."""

from __future__ import annotations

import typer

from protector_models.cli import detox, evaluate, pins, scan, train

app = typer.Typer(
    name="mllm-protector",
    help="Guard (question, answer) pairs with MLLM-Protector: score, refuse or rewrite harmful answers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def main() -> None:
    """Guard (question, answer) pairs with MLLM-Protector."""


scan.register(app)
evaluate.register(app)
train.register(app)
detox.register(app)
pins.register(app)

__all__ = ["app"]
