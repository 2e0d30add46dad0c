"""Where ``scan`` writes: nothing until the whole scan has succeeded, then all of it, and never over its input.

A regular file (or a new path) is written as a temporary file beside it and renamed over it: an existing file
keeps its mode (a new one gets the umask's), and a symlink stays a symlink (the file it points to is replaced).
Stdout, devices, FIFOs and sockets cannot be renamed over: the results are buffered, then copied to them in whole
lines with signals held off, so an interrupt stops the copy between two records and says how many were written.
"""

from __future__ import annotations

import functools
import os
import secrets
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from protector_models.cli.signals import TerminatedError, deferred_signals, signum_of
from protector_models.errors import InvalidInputError

_COPY_BLOCK = 1 << 16  # bytes of whole lines written between two looks at a held-off signal


class IncompleteOutputError(Exception):
    """A signal stopped the copy of the results to a stream: the reader has only the first ``written`` lines."""

    def __init__(self, where: str, written: int, total: int, signum: int, *, cut: bool) -> None:
        last = " and perhaps the start of the next" if cut else ", each whole"
        super().__init__(
            f"interrupted while writing the results to {where}: it got only the first {written} of {total} "
            f"records{last}; run the scan again to get them all"
        )
        self.exit_code = 128 + signum


def refuse_overwriting_input(input_path: str, output: str) -> None:
    """Refuse an output that is the input (its only copy), also through stdin or stdout, or that is a directory."""
    if output != "-" and Path(output).is_dir():
        raise InvalidInputError(f"-o {output} is a directory; give a file path, e.g. -o {Path(output) / 'out.jsonl'}")
    input_stat, output_stat = _stat(input_path, sys.stdin), _stat(output, sys.stdout)
    if input_stat is None or output_stat is None or not os.path.samestat(input_stat, output_stat):
        return
    if output == "-":
        raise InvalidInputError(
            f"stdout is the input file {input_path}: the results would be mixed into your only copy of it; "
            "write them elsewhere with -o FILE"
        )
    suggestion = Path(output).with_suffix(".scanned.jsonl").name
    source = "the input file (read through stdin)" if input_path == "-" else "the input file"
    raise InvalidInputError(
        f"-o {output} is {source}: scan would replace your only copy of it with the results; "
        f"write them elsewhere, e.g. -o {suggestion}"
    )


def _stat(path: str, stream: IO[str]) -> os.stat_result | None:
    """What ``path`` (``-``: the stream) is on disk; None when it is nothing there yet (or not a real file)."""
    try:
        return os.fstat(stream.fileno()) if path == "-" else Path(path).stat()
    except (OSError, ValueError):  # no such file yet, or a stream with no file behind it (e.g. in tests)
        return None


@contextmanager
def staged_output(path: str) -> Iterator[IO[str]]:
    """A file to write the results to; they reach ``path`` (``-``: stdout) only when the block ends without error."""
    try:
        existing: os.stat_result | None = Path(path).stat() if path != "-" else None
    except FileNotFoundError:  # a new file (or a symlink to one)
        existing = None
    if path != "-" and (existing is None or stat.S_ISREG(existing.st_mode)):
        with _replacing(Path(os.path.realpath(path)), existing) as handle:
            yield handle
        return
    with tempfile.TemporaryFile("w+", encoding="utf-8") as buffer:
        yield buffer
        buffer.seek(0)
        if path == "-":
            _copy_lines(buffer, _writer(sys.stdout), "stdout")
            return
        with Path(path).open("wb", buffering=0) as stream:  # a device, FIFO or socket: written through
            _copy_lines(buffer, functools.partial(_write_all, stream.fileno()), path)


@contextmanager
def _replacing(target: Path, existing: os.stat_result | None) -> Iterator[IO[str]]:
    """A temporary file beside ``target``, renamed over it on success and removed on any failure or signal."""
    target.parent.mkdir(parents=True, exist_ok=True)
    while True:
        temporary = target.parent / f".{target.name}.{secrets.token_hex(4)}.tmp"
        try:  # mode 0o666 less the umask, as for any new file
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            if existing is not None:
                os.fchmod(descriptor, stat.S_IMODE(existing.st_mode))
            yield handle
        temporary.replace(target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _copy_lines(buffer: IO[str], write: Callable[[bytes], None], where: str) -> None:
    """Copy ``buffer`` in blocks of whole lines; a signal is acted on only between blocks."""
    written, block = 0, []
    with deferred_signals() as held:
        try:
            while block := buffer.readlines(_COPY_BLOCK):
                if held.signum is not None:
                    total = written + len(block) + len(buffer.readlines())
                    raise IncompleteOutputError(where, written, total, held.signum, cut=False)
                write("".join(block).encode("utf-8"))
                written += len(block)
        except (KeyboardInterrupt, TerminatedError) as error:  # a second signal: stopped at once, perhaps mid-line
            total = written + len(block) + len(buffer.readlines())
            raise IncompleteOutputError(where, written, total, signum_of(error), cut=True) from None


def _writer(stream: IO[str]) -> Callable[[bytes], None]:
    """How to write UTF-8 bytes to ``stream`` in full: to its file descriptor when it has one."""
    stream.flush()
    try:
        return functools.partial(_write_all, stream.fileno())
    except (OSError, ValueError):  # no file behind it (e.g. a test runner's stdout)

        def write_text(data: bytes) -> None:
            stream.write(data.decode("utf-8"))
            stream.flush()

        return write_text


def _write_all(descriptor: int, data: bytes) -> None:
    """Every byte of ``data``, however many writes it takes.

    ``os.write`` itself: a buffered stream can drop the rest of a write that a signal interrupted part way
    (seen with CPython 3.11 on a full pipe).
    """
    view = memoryview(data)
    while view:
        view = view[os.write(descriptor, view) :]
