"""``mllm-protector scan``: guard every record of a JSON Lines file."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Annotated

import typer
from tqdm.auto import tqdm

from protector_models.cli.options import build_config, fail
from protector_models.errors import HarmfulContentError, InvalidInputError, ModelRuntimeError, ProtectorError
from protector_models.protector import Protector
from protector_models.records import ScanRecord, atomic_output, parse_records, result_line

CHUNK = 256  # records per protector call: large enough to batch well, small enough for a live progress bar
EXIT_HARMFUL = 3  # action: raise and something was flagged
EXIT_UNCHECKED = 4  # --fail-on-unchecked and a model failed on some record


class _FlaggedUnderRaiseError(ProtectorError):
    """``action: raise`` flagged these input lines; nothing was written."""

    def __init__(self, lines: list[int]) -> None:
        super().__init__(
            f"{len(lines)} record(s) flagged as harmful at {_lines(lines)}; the config's action is raise, so "
            "nothing was written (set action to refuse, detoxify or pass to write the results)"
        )


@dataclass
class _Tally:
    """What the scan did, by input line."""

    flagged: int = 0
    unchecked: list[int] = field(default_factory=list)
    harmful_under_raise: list[int] = field(default_factory=list)


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
    fail_on_unchecked: Annotated[
        bool,
        typer.Option(
            "--fail-on-unchecked",
            help=f"Exit {EXIT_UNCHECKED} when a model failed on any record (on_error: pass or block); "
            "the output is still written, those records marked.",
        ),
    ] = False,
) -> None:
    """Score each answer and write every record back with harm_score, flagged, action and output added.

    Nothing is written (to a file or to stdout) unless the whole scan succeeds. A bad line stops the run before
    any model loads, unless --skip-invalid is given. Exit codes: 0 done, 2 an error, 3 a record flagged under
    action: raise, 4 an unchecked record with --fail-on-unchecked.
    """
    try:
        _check_output(input_path, output)
        records, skipped = _read(input_path, skip_invalid)
        protector = Protector.from_config(
            build_config(config, preset, threshold=threshold, device=device, batch_size=batch_size)
        ).load()
        started = time.perf_counter()
        with atomic_output(output) as sink:
            tally = _guard(protector, records, sink)
    except _FlaggedUnderRaiseError as error:
        raise fail(error, code=EXIT_HARMFUL) from None
    except (ProtectorError, OSError) as error:
        raise fail(error) from None
    seconds = time.perf_counter() - started
    rate = len(records) / seconds if seconds > 0 else 0.0
    typer.echo(
        f"scanned {len(records)} records: {tally.flagged} flagged, {len(tally.unchecked)} unchecked, "
        f"{len(skipped)} skipped; {rate:.1f} pairs/s",
        err=True,
    )
    if tally.unchecked:
        typer.echo(
            f"warning: a model failed on {len(tally.unchecked)} record(s) at {_lines(tally.unchecked)}; they are "
            "written with action unchecked (on_error: pass) or block (on_error: block)",
            err=True,
        )
        if fail_on_unchecked:
            raise typer.Exit(EXIT_UNCHECKED)


def _check_output(input_path: str, output: str) -> None:
    """Refuse an output that would replace the input (its only copy) or that cannot be a file."""
    if output == "-":
        return
    if Path(output).is_dir():
        raise InvalidInputError(f"-o {output} is a directory; give a file path, e.g. -o {Path(output) / 'out.jsonl'}")
    if input_path == "-":
        return
    try:
        same = Path(input_path).samefile(output)
    except OSError:  # either does not exist yet: not the same file
        return
    if same:
        suggestion = Path(output).with_suffix(".scanned.jsonl").name
        raise InvalidInputError(
            f"-o {output} is the input file: scan would replace your only copy of it with the results; "
            f"write them elsewhere, e.g. -o {suggestion}"
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


def _guard(protector: Protector, records: list[ScanRecord], sink: IO[str]) -> _Tally:
    """Protect in chunks, writing each record with its verdict; under ``action: raise`` collect every flagged line.

    Errors name input lines, not positions within a chunk.
    """
    tally = _Tally()
    progress = tqdm(total=len(records), unit="pair", disable=not sys.stderr.isatty(), file=sys.stderr)
    for start in range(0, len(records), CHUNK):
        chunk = records[start : start + CHUNK]
        progress.update(len(chunk))
        try:
            results = protector.protect([record.pair for record in chunk])
        except HarmfulContentError as error:
            tally.harmful_under_raise += [r.line for r, res in zip(chunk, error.results, strict=True) if res.flagged]
            continue
        except ModelRuntimeError as error:
            raise ModelRuntimeError(f"{_lines([chunk[0].line, chunk[-1].line], span=True)}: {error}") from None
        for record, result in zip(chunk, results, strict=True):
            tally.flagged += result.flagged and result.checked
            if not result.checked:
                tally.unchecked.append(record.line)
            score = None if result.harm_score is None else round(result.harm_score, 6)
            verdict = {"harm_score": score, "flagged": result.flagged, "action": result.action, "output": result.output}
            sink.write(result_line(record, verdict))
    progress.close()
    if tally.harmful_under_raise:
        raise _FlaggedUnderRaiseError(tally.harmful_under_raise)
    return tally


def _lines(numbers: list[int], *, span: bool = False) -> str:
    """``line 3``, ``lines 3, 7, 12`` (the first ten, then a count), or ``lines 3-300`` with ``span``."""
    if span and numbers[0] != numbers[-1]:
        return f"lines {numbers[0]}-{numbers[-1]}"
    if len(numbers) == 1:
        return f"line {numbers[0]}"
    shown = ", ".join(map(str, numbers[:10]))
    return f"lines {shown}" + (f" and {len(numbers) - 10} more" if len(numbers) > 10 else "")


def register(app: typer.Typer) -> None:
    """Add ``scan`` to the command line."""
    app.command("scan")(scan)
