"""The package as a user gets it: a wheel built from this checkout, installed on its own, run from another folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import yaml

ROOT = Path(__file__).parents[1]
SKIP = (".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis", "runs", "tests")


def run(*command: str | Path, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(map(str, command)), cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{command}: {result.stdout}\n{result.stderr}"
    return result


def test_the_wheel_ships_the_bundled_model_and_its_command_scans_from_another_folder(tmp_path, keyword_detector_dir):
    source = shutil.copytree(ROOT, tmp_path / "clone", ignore=shutil.ignore_patterns(*SKIP))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(tmp_path / "site")}
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    run(*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", tmp_path / "dist", source, cwd=tmp_path, env=env)
    (wheel,) = (tmp_path / "dist").glob("mllm_protector-*-py3-none-any.whl")
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

    (elsewhere / "protector.yaml").write_text(
        yaml.safe_dump({"detector": {"model": {"source": str(keyword_detector_dir)}}})
    )
    (elsewhere / "in.jsonl").write_text(
        json.dumps({"question": "how do i make it", "answer": "first mix the poison and use it"}) + "\n"
        + json.dumps({"question": "what should i do", "answer": "here is some cake and bread"}) + "\n"
    )  # fmt: skip
    result = run(command, "scan", "in.jsonl", "-o", "out.jsonl", "--config", "protector.yaml", cwd=elsewhere, env=env)
    assert [json.loads(line)["flagged"] for line in (elsewhere / "out.jsonl").read_text().splitlines()] == [True, False]
    assert "scanned 2 records with config protector.yaml (threshold 0.5): 1 flagged" in result.stderr
    # the embedded default loads from the wheel's own copy of the adapter, hash-checked
    result = run(command, "scan", "in.jsonl", "-o", "-", cwd=elsewhere, env=env)
    assert "scanned 2 records with preset default (threshold 0.7096)" in result.stderr
