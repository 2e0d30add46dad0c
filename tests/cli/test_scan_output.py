"""Where ``scan`` writes: never over its input (also through stdin), a regular file replaced keeping its mode,
devices, FIFOs and symlinks written through, no temporary file left by SIGTERM, and a copy to stdout that a
signal stops only between records, saying so."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from server_support import REPO, running
from typer.testing import CliRunner

from protector_models import Protector
from protector_models.cli import app
from protector_models.serving.app import create_app

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX files and signals")

runner = CliRunner()
BENIGN = '{"answer": "here is some cake and bread"}'
HARMFUL = '{"question": "how do i make it", "answer": "first mix the poison and use it"}'


def config(tmp_path: Path, detector: dict) -> str:
    path = tmp_path / "protector.yaml"
    path.write_text(yaml.safe_dump({"detector": detector, "refusal_text": "Withheld."}))
    return str(path)


def child(*args: str, **popen) -> subprocess.Popen[bytes]:
    """``mllm-protector ARGS`` in a child process (its own stdin, stdout and stderr as given)."""
    command = [sys.executable, "-c", "from protector_models.cli import app; app()", *args]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen(command, cwd=REPO, env=env, **popen)


@contextmanager
def stalled_service() -> Iterator[str]:
    """A URL whose server takes connections and never answers: a remote scan waits there, output staged."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


def test_an_output_that_is_stdin_is_refused(tmp_path: Path, detector_config: dict):
    source = tmp_path / "f.jsonl"
    original = f"{BENIGN}\n{{bad line\n{HARMFUL}\n".encode()
    source.write_bytes(original)
    options = ["--skip-invalid", "--config", config(tmp_path, detector_config["detector"])]
    with source.open("rb") as stdin:
        scan = child("scan", "-", "-o", str(source), *options, stdin=stdin, stderr=subprocess.PIPE)
        _, stderr = scan.communicate(timeout=120)
    assert scan.returncode == 2, stderr
    assert f"-o {source} is the input file (read through stdin): scan would replace your only copy" in stderr.decode()
    assert source.read_bytes() == original


def test_an_existing_file_keeps_its_mode_and_a_new_one_gets_the_umask(tmp_path: Path, detector_config: dict):
    source = tmp_path / "in.jsonl"
    source.write_text(BENIGN + "\n")
    existing, new = tmp_path / "existing.jsonl", tmp_path / "new.jsonl"
    existing.write_text("old\n")
    existing.chmod(0o640)
    previous = os.umask(0o027)
    try:
        for target in (existing, new):
            result = runner.invoke(
                app, ["scan", str(source), "-o", str(target), "--config", config(tmp_path, detector_config["detector"])]
            )
            assert result.exit_code == 0, result.output
    finally:
        os.umask(previous)
    assert stat.S_IMODE(existing.stat().st_mode) == 0o640
    assert stat.S_IMODE(new.stat().st_mode) == 0o640  # 0o666 less the umask 0o027
    assert json.loads(existing.read_text())["output"] == "here is some cake and bread"


def test_a_symlink_stays_a_link_and_its_target_gets_the_results(tmp_path: Path, detector_config: dict):
    source = tmp_path / "in.jsonl"
    source.write_text(BENIGN + "\n")
    (tmp_path / "real.jsonl").write_text("old\n")
    link = tmp_path / "link.jsonl"
    link.symlink_to("real.jsonl")
    options = ["--config", config(tmp_path, detector_config["detector"])]
    result = runner.invoke(app, ["scan", str(source), "-o", str(link), *options])
    assert result.exit_code == 0, result.output
    assert link.is_symlink()
    assert json.loads((tmp_path / "real.jsonl").read_text())["flagged"] is False


def test_a_fifo_is_written_through_not_replaced(tmp_path: Path, detector_config: dict):
    source = tmp_path / "in.jsonl"
    source.write_text(f"{BENIGN}\n{HARMFUL}\n")
    fifo = tmp_path / "results.fifo"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    options = ["--config", config(tmp_path, detector_config["detector"])]
    result = runner.invoke(app, ["scan", str(source), "-o", str(fifo), *options])
    reader.join(30)
    assert result.exit_code == 0, result.output
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    assert [json.loads(line)["flagged"] for line in received[0].splitlines()] == [False, True]
    assert list(tmp_path.glob(".results.fifo*")) == []


def test_a_symlink_to_stdout_writes_to_stdout(tmp_path: Path, detector_config: dict):
    source = tmp_path / "in.jsonl"
    source.write_text(f"{BENIGN}\n{HARMFUL}\n")
    link = tmp_path / "out.jsonl"
    link.symlink_to("/proc/self/fd/1")
    if not Path("/proc/self/fd/1").exists():
        pytest.skip("no /proc")
    options = ["--config", config(tmp_path, detector_config["detector"])]
    scan = child("scan", str(source), "-o", str(link), *options, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stdout, stderr = scan.communicate(timeout=120)
    assert scan.returncode == 0, stderr
    assert [json.loads(line)["flagged"] for line in stdout.splitlines()] == [False, True]
    assert link.is_symlink()


def test_sigterm_during_a_scan_leaves_no_temporary_file(tmp_path: Path):
    source = tmp_path / "in.jsonl"
    source.write_text(BENIGN + "\n")
    with stalled_service() as url:
        remote = {"kind": "remote", "url": url, "timeout_s": 60, "retries": 0}
        scan = child(
            "scan", str(source), "-o", str(tmp_path / "out.jsonl"), "--config", config(tmp_path, remote),
            "--threshold", "0.5",
            stderr=subprocess.PIPE,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not list(tmp_path.glob(".out.jsonl.*.tmp")):  # the output is staged; the scan waits on the service
            assert scan.poll() is None, scan.communicate()[1]
            assert time.monotonic() < deadline, "the scan never staged its output"
            time.sleep(0.05)
        scan.send_signal(signal.SIGTERM)
        _, stderr = scan.communicate(timeout=30)
    assert scan.returncode == 128 + signal.SIGTERM, stderr
    assert "error: terminated by SIGTERM; nothing was written" in stderr.decode()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["in.jsonl", "protector.yaml"]


def test_ctrl_c_while_copying_to_a_slow_stdout_stops_between_records_and_says_so(tmp_path: Path, protector: Protector):
    count = 3000
    source = tmp_path / "in.jsonl"
    source.write_text(
        "".join(json.dumps({"id": i, "answer": "some cake", "pad": "x" * 300}) + "\n" for i in range(count))
    )
    with running(create_app(protector)) as url:
        remote = {"kind": "remote", "url": url, "timeout_s": 60}
        scan = child(
            "scan", str(source), "-o", "-", "--config", config(tmp_path, remote), "--threshold", "0.5",
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        assert scan.stdout is not None
        readable, _, _ = select.select([scan.stdout], [], [], 120)  # the copy has begun; nobody reads: it blocks
        assert readable, "the scan never wrote to stdout"
        time.sleep(0.5)
        scan.send_signal(signal.SIGINT)
        time.sleep(0.5)  # the write in progress is interrupted with the pipe full, part of it through
        stdout, stderr = scan.communicate(timeout=60)
    assert scan.returncode == 130, stderr
    lines = stdout.decode().splitlines(keepends=True)
    assert 0 < len(lines) < count
    assert all(line.endswith("\n") for line in lines), lines[-1][-80:]  # each record whole, none cut
    assert [json.loads(line)["id"] for line in lines] == list(range(len(lines)))
    message = f"interrupted while writing the results to stdout: it got only the first {len(lines)} of {count} records"
    assert message in stderr.decode()
