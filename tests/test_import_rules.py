"""The rooms of `protector_models` and what each may import (docs/architecture.md): a room imports only itself and
the rooms below it, so no circle can form. Every import counts, also those inside functions and for type checking."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "protector_models"

ROOMS: list[tuple[str, tuple[str, ...]]] = [
    ("floor", ("errors", "pairs", "results", "interfaces")),
    ("config", ("config",)),
    ("data", ("data",)),
    ("models", ("models",)),
    ("evaluation", ("evaluation",)),
    ("detox", ("detox",)),
    ("training", ("training",)),
    ("api", ("protector", "streaming", "testing", "__init__")),
    ("serving", ("serving",)),
    ("cli", ("cli",)),
]
"""Lowest first. A name is a top-level module or subpackage of `protector_models`."""
FLOOR = {name: floor for floor, (_, names) in enumerate(ROOMS) for name in names}


def room_of(module: str) -> int:
    """The floor of a dotted module name inside `protector_models`."""
    parts = module.split(".")
    assert parts[0] == "protector_models", module
    return FLOOR[parts[1] if len(parts) > 1 else "__init__"]


def module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path) -> set[str]:
    """Every `protector_models` module that the file at ``path`` imports, by its dotted name."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = (
                importlib.util.resolve_name("." * node.level + (node.module or ""), package)
                if node.level
                else node.module
            )
            assert base is not None
            found.add(base)
            for alias in node.names:  # `from protector_models import bundled_pins` imports a module
                if (PACKAGE.parent / f"{base}.{alias.name}".replace(".", "/")).with_suffix(".py").exists():
                    found.add(f"{base}.{alias.name}")
    return {module for module in found if module.split(".")[0] == "protector_models"}


def upward_imports(package: Path = PACKAGE) -> list[str]:
    """``importer -> imported`` for each import of a higher room than the importer's."""
    found = []
    for path in sorted(package.rglob("*.py")):
        importer = module_name(path)
        for imported in sorted(imported_modules(path)):
            if room_of(imported) > room_of(importer):
                found.append(f"{importer} -> {imported}")
    return found


def test_every_module_lives_in_a_room():
    for path in PACKAGE.rglob("*.py"):
        room_of(module_name(path))  # fails for a top-level module missing from ROOMS


def test_no_room_imports_a_room_above_it():
    assert upward_imports() == []


def test_an_upward_import_is_caught(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    copy = tmp_path / "protector_models"
    (copy / "config").mkdir(parents=True)
    (copy / "models").mkdir()
    (copy / "config" / "schema.py").write_text("from protector_models.models.loading import load\n")
    (copy / "config" / "presets.py").write_text("from ..models import bundled\n")
    (copy / "models" / "loading.py").write_text("from protector_models.config.schema import ModelSpec\n")
    (copy / "models" / "bundled.py").write_text("")
    monkeypatch.setattr(f"{__name__}.PACKAGE", copy)
    assert upward_imports(copy) == [
        "protector_models.config.presets -> protector_models.models",
        "protector_models.config.presets -> protector_models.models.bundled",
        "protector_models.config.schema -> protector_models.models.loading",
    ]
