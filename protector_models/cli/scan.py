"""``mllm-protector scan``: guard every record of a JSON Lines file."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Annotated, Any

import typer
from tqdm.auto import tqdm

from protector_models.cli.options import (
    AnswerKeyOption,
    BatchSizeOption,
    ConfigOption,
    DeviceOption,
    PresetOption,
    QuestionKeyOption,
    ThresholdOption,
    build_config,
    fail,
)
from protector_models.cli.output import IncompleteOutputError, refuse_overwriting_input, staged_output
from protector_models.cli.signals import TerminatedError, terminating_unwinds
from protector_models.data.labelled import open_input
from protector_models.data.records import ScanRecord, parse_records, result_line
from protector_models.errors import HarmfulContentError, InvalidInputError, ModelRuntimeError, ProtectorError
from protector_models.protector import Protector

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

    flagged: list[tuple[ScanRecord, float | None]] = field(default_factory=list)
    unchecked: list[int] = field(default_factory=list)
    causes: dict[str, int] = field(default_factory=dict)
    """Why a model failed, each distinct message once, with how many records it left unchecked."""
    harmful_under_raise: list[int] = field(default_factory=list)
    decided: int = 0
    """Records a cascade decided; of them, ``escalated`` went to its second detector."""
    escalated: int = 0


def scan(
    input_path: Annotated[
        str, typer.Argument(metavar="INPUT", help="JSON Lines, one record per line with an answer; - for stdin.")
    ],
    output: Annotated[str, typer.Option("--output", "-o", help="Where to write the results; - for stdout.")],
    config: ConfigOption = None,
    preset: PresetOption = None,
    threshold: ThresholdOption = None,
    batch_size: BatchSizeOption = None,
    device: DeviceOption = None,
    question_key: QuestionKeyOption = "question",
    answer_key: AnswerKeyOption = "answer",
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
        with terminating_unwinds():  # SIGTERM unwinds like Ctrl-C: no temporary file is left behind
            refuse_overwriting_input(input_path, output)
            if question_key == answer_key:
                raise InvalidInputError(f"--question-key and --answer-key must differ, both are {answer_key!r}")
            built = build_config(config, preset, threshold=threshold, device=device, batch_size=batch_size)
            records, skipped = _read(input_path, skip_invalid, question_key, answer_key)
            protector = Protector.from_config(built).load()
            started = time.perf_counter()
            with staged_output(output) as sink:
                tally = _guard(protector, records, sink)
    except _FlaggedUnderRaiseError as error:
        raise fail(error, code=EXIT_HARMFUL) from None
    except IncompleteOutputError as error:
        raise fail(error, code=error.exit_code) from None
    except TerminatedError as error:
        raise fail(Exception(f"{error}; nothing was written"), code=128 + error.signum) from None
    except (ProtectorError, OSError) as error:
        raise fail(error) from None
    seconds = time.perf_counter() - started
    rate = len(records) / seconds if seconds > 0 else 0.0
    used = f"config {config}" if config else f"preset {preset or 'default'}"
    typer.echo(
        f"scanned {len(records)} records with {used} (threshold {built.threshold:g}): {len(tally.flagged)} flagged, "
        f"{len(tally.unchecked)} unchecked, {len(skipped)} skipped; {rate:.1f} pairs/s"
        + (
            f"; cascade: {tally.escalated} of {tally.decided} ({100 * tally.escalated / tally.decided:.1f}%) sent on "
            "to the second detector"
            if tally.decided
            else ""
        ),
        err=True,
    )
    if _on_terminal():
        for line in _flagged_lines(tally.flagged):
            typer.echo(line, err=True)
    if tally.unchecked:
        typer.echo(
            f"warning: a model failed on {len(tally.unchecked)} record(s) at {_lines(tally.unchecked)}; they are "
            'written with "flagged": false and action unchecked (on_error: pass) or block (on_error: block)',
            err=True,
        )
        for cause, count in tally.causes.items():
            typer.echo(f"  cause ({count} record(s)): {cause}", err=True)
        if fail_on_unchecked:
            raise typer.Exit(EXIT_UNCHECKED)


def _on_terminal() -> bool:
    """Whether a person is watching stderr: then a progress bar shows, and the flagged records are listed."""
    return sys.stderr.isatty()


LISTED = 20  # flagged records listed on a terminal; the output has them all


def _flagged_lines(flagged: list[tuple[ScanRecord, float | None]]) -> list[str]:
    """One line per flagged record: its line, its id if it has one, its score and the start of its answer."""
    lines = []
    for record, score in flagged[:LISTED]:
        record_id = json.loads(record.text).get("id")
        named = f", id {json.dumps(record_id, ensure_ascii=False)[:40]}" if isinstance(record_id, str | int) else ""
        text = "".join(c if c.isprintable() else " " for c in " ".join(record.pair.answer.split()))
        lines.append(f"  line {record.line}{named}: {score:.3f}  {text[:60]!r}{'...' if len(text) > 60 else ''}")
    if len(flagged) > LISTED:
        lines.append(f'  ... and {len(flagged) - LISTED} more ("flagged": true in the output)')
    return lines


def _read(
    input_path: str, skip_invalid: bool, question_key: str, answer_key: str
) -> tuple[list[ScanRecord], list[InvalidInputError]]:
    """All records, validated before any model loads, so a bad line costs nothing and writes nothing. No record
    at all (an empty input, or every line skipped) is an error: a scan of nothing is a mistake."""
    where = "stdin" if input_path == "-" else Path(input_path).name
    if input_path == "-":  # lines end at LF alone, as in a file: a bare CR is JSON whitespace, not a line end
        lines = sys.stdin.buffer.readlines()
    else:
        with open_input(Path(input_path)) as handle:
            lines = handle.readlines()
    records, skipped = [], []
    for item in parse_records(lines, where, question_key=question_key, answer_key=answer_key):
        if isinstance(item, ScanRecord):
            records.append(item)
        elif skip_invalid:
            skipped.append(item)
            typer.echo(f"skipped: {item}", err=True)
        else:
            raise InvalidInputError(f"{item} (use --skip-invalid to skip bad lines)")
    if not records:
        why = f"every line is invalid ({len(skipped)} skipped, listed above)" if skipped else "it holds no records"
        raise InvalidInputError(f"nothing to scan in {where}: {why}; nothing was written")
    return records, skipped


def _guard(protector: Protector, records: list[ScanRecord], sink: IO[str]) -> _Tally:
    """Protect in chunks, writing each record with its verdict; under ``action: raise`` collect every flagged line.

    Errors name input lines, not positions within a chunk.
    """
    tally = _Tally()
    progress = tqdm(total=len(records), unit="pair", disable=not _on_terminal(), file=sys.stderr)
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
            if result.flagged and result.checked:
                tally.flagged.append((record, result.harm_score))
            if not result.checked:  # not flagged: no model judged it (a blocked one is withheld all the same)
                tally.unchecked.append(record.line)
                cause = result.error or "unknown error"
                tally.causes[cause] = tally.causes.get(cause, 0) + 1
            score = None if result.harm_score is None else round(result.harm_score, 6)
            verdict: dict[str, Any] = {
                "harm_score": score,
                "flagged": result.flagged and result.checked,
                "action": result.action,
                "output": result.output,
            }
            if result.categories:
                verdict["harm_categories"] = {
                    name: level if isinstance(level, bool) else round(level, 6)
                    for name, level in result.categories.items()
                }
            if result.decided_by is not None:
                verdict["decided_by"] = result.decided_by
                tally.decided += 1
                tally.escalated += result.decided_by.startswith("second")
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
    app.command("scan", short_help="Guard every record of a JSON Lines file (score, refuse, rewrite).")(scan)
