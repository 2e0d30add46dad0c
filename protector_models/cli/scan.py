"""``mllm-protector scan``: guard every record of a JSON Lines file."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from tqdm.auto import tqdm

from protector_models.cli.options import build_config, fail
from protector_models.errors import HarmfulContentError, InvalidInputError, ProtectorError
from protector_models.protector import Protector
from protector_models.records import ScanRecord, atomic_output, dump_line, parse_records

CHUNK = 256  # records per protector call: large enough to batch well, small enough for a live progress bar


def scan(
    input_path: Annotated[
        str, typer.Argument(metavar="INPUT", help="JSON Lines with `question` and `answer`; - for stdin.")
    ],
    output: Annotated[str, typer.Option("--output", "-o", help="Where to write the results; - for stdout.")],
    config: Annotated[Path | None, typer.Option("--config", help="YAML config (see docs/configuration.md).")] = None,
    preset: Annotated[str | None, typer.Option("--preset", help="Named preset; `default` when no --config.")] = None,
    threshold: Annotated[float | None, typer.Option("--threshold", min=0.0, max=1.0)] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", min=1)] = None,
    device: Annotated[str | None, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")] = None,
    skip_invalid: Annotated[
        bool, typer.Option("--skip-invalid", help="Skip bad lines (listed on stderr) instead of stopping.")
    ] = False,
) -> None:
    """Score each answer and write every record back with harm_score, flagged, action and output added.

    A bad line stops the run before anything is written, unless --skip-invalid is given.
    """
    try:
        records, skipped = _read(input_path, skip_invalid)
        protector = Protector.from_config(
            build_config(config, preset, threshold=threshold, device=device, batch_size=batch_size)
        ).load()
        started = time.perf_counter()
        flagged = _guard(protector, records, output)
    except HarmfulContentError as error:
        raise fail(error, code=3) from None
    except (ProtectorError, OSError) as error:
        raise fail(error) from None
    seconds = time.perf_counter() - started
    rate = len(records) / seconds if seconds > 0 else 0.0
    typer.echo(
        f"scanned {len(records)} records: {flagged} flagged, {len(skipped)} skipped; {rate:.1f} pairs/s",
        err=True,
    )


def _read(input_path: str, skip_invalid: bool) -> tuple[list[ScanRecord], list[InvalidInputError]]:
    """All records, validated before any model loads, so a bad line costs nothing and writes nothing."""
    where = "stdin" if input_path == "-" else Path(input_path).name
    if input_path == "-":
        lines = sys.stdin.buffer.read().splitlines(keepends=True)
    else:
        with Path(input_path).open("rb") as handle:
            lines = handle.readlines()
    records, skipped = [], []
    for item in parse_records(lines, where):
        if isinstance(item, ScanRecord):
            records.append(item)
        elif skip_invalid:
            skipped.append(item)
            typer.echo(f"skipped: {item}", err=True)
        else:
            raise InvalidInputError(f"{item} (use --skip-invalid to skip bad lines)")
    return records, skipped


def _guard(protector: Protector, records: list[ScanRecord], output: str) -> int:
    """Protect in chunks, writing each record with its verdict; returns how many were flagged."""
    flagged = 0
    progress = tqdm(total=len(records), unit="pair", disable=not sys.stderr.isatty(), file=sys.stderr)
    with atomic_output(output) as sink:
        for start in range(0, len(records), CHUNK):
            chunk = records[start : start + CHUNK]
            for record, result in zip(chunk, protector.protect([r.pair for r in chunk]), strict=True):
                flagged += result.flagged
                sink.write(
                    dump_line(
                        {
                            **record.fields,
                            "harm_score": None if result.harm_score is None else round(result.harm_score, 6),
                            "flagged": result.flagged,
                            "action": result.action,
                            "output": result.output,
                        }
                    )
                )
            progress.update(len(chunk))
    progress.close()
    return flagged


def register(app: typer.Typer) -> None:
    """Add ``scan`` to the command line."""
    app.command("scan")(scan)
