"""File digests: the SHA-256 pins of a model directory, and checking a directory against them.

A pin set names every file of a directory (relative POSIX paths) with its SHA-256, except hidden entries such as
``.gitattributes`` or ``.cache/`` and YAML files: no model loader reads those, and a ``protector.yaml`` that
holds the pins often sits in the directory it pins. A directory matches when it holds exactly those files with
those digests: a changed, missing or added file is refused, since any file a loader reads can change verdicts.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from functools import cache
from pathlib import Path

from protector_models.errors import ModelLoadError


@cache
def _sha256_cached(path: str, key: tuple[int, ...]) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    """SHA-256 of a file (through symlinks), computed once per version of the file in this process.

    A version is (device, inode, size, mtime, ctime): rewriting a file in place changes its ctime even when its
    size and mtime are restored.
    """
    stat = path.stat()
    return _sha256_cached(str(path), (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns))


def _unpinned(name: str) -> bool:
    return name.startswith(".") or name.endswith((".yaml", ".yml"))


def pinned_files(directory: Path) -> list[str]:
    """Every file under ``directory`` but hidden and YAML ones, as sorted relative POSIX paths.

    Symlinks to files count as files (hub caches are made of them); a symlink to a directory is refused, since
    the files behind it would escape the listing.
    """
    names = []
    for root, dirs, files in os.walk(directory):
        here = Path(root)
        for name in dirs:
            if not name.startswith(".") and (here / name).is_symlink():
                raise ModelLoadError(
                    f"{here / name} is a symlink to a directory; pinned model directories may link files, not folders"
                )
        dirs[:] = [name for name in dirs if not name.startswith(".")]
        names += [(here / name).relative_to(directory).as_posix() for name in files if not _unpinned(name)]
    return sorted(names)


def directory_pins(directory: Path) -> dict[str, str]:
    """The pins of every file under ``directory`` (see :func:`pinned_files`)."""
    return {name: file_sha256(directory / name) for name in pinned_files(directory)}


def verify_pins(directory: Path, pins: Mapping[str, str], *, key: str, hint: str) -> None:
    """Raise :class:`ModelLoadError` unless ``directory`` holds exactly the pinned files with the pinned digests.

    ``key`` names where the pins come from (a config key, or "the pins of bundled model X"); ``hint`` says how to
    get a matching directory.
    """
    present = set(pinned_files(directory))
    missing = sorted(set(pins) - present)
    if missing:
        raise ModelLoadError(f"{directory} lacks {', '.join(missing)}, pinned in {key}; {hint}")
    extra = sorted(present - set(pins))
    if extra:
        raise ModelLoadError(
            f"{directory} holds {', '.join(extra[:5])}{' ...' * (len(extra) > 5)}, not pinned in {key}: every file "
            f"a loader might read must be pinned; remove it, or pin it (`mllm-protector hash {directory}`)"
        )
    for name, expected in pins.items():
        try:
            actual = file_sha256(directory / name)
        except OSError as error:
            raise ModelLoadError(
                f"cannot read {directory / name} to check its pin: {error.strerror or error}"
            ) from None
        if actual != expected:
            raise ModelLoadError(
                f"{directory / name} has SHA-256 {actual}, expected {expected} (pinned in {key}): the file is "
                f"corrupt or was replaced; {hint}"
            )
