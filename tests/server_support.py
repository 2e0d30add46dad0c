"""Running the HTTP service for tests on a free loopback port: in a background thread, or in a child process."""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from protector_models.serving.shutdown import GracefulServer


@contextmanager
def running(app: FastAPI, *, startup_s: float = 60.0) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 (a free port) until the block ends; yields the base URL."""
    with running_server(app, startup_s=startup_s) as (_, url):
        yield url


@contextmanager
def running_server(app: FastAPI, *, startup_s: float = 60.0) -> Iterator[tuple[uvicorn.Server, str]]:
    """:func:`running`, yielding the server too (``server.should_exit = True`` is what SIGTERM does)."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    server = GracefulServer(config, app.state.drain)
    thread = threading.Thread(target=server.run, name="test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield server, f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
        assert not thread.is_alive(), "the test server did not shut down"


REPO = Path(__file__).resolve().parents[1]


@contextmanager
def serve_process(*args: str, startup_s: float = 120.0) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``mllm-protector serve ARGS --port 0`` in a child process; yields it and its base URL once it listens.

    The child is killed at the end if it is still running; its output is kept in ``child.output``."""
    command = [sys.executable, "-c", "from protector_models.cli import app; app()", "serve", *args, "--port", "0"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    child = subprocess.Popen(command, cwd=REPO, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    lines: queue.Queue[str] = queue.Queue()
    output: list[str] = []
    child.output = output

    def read() -> None:
        assert child.stderr is not None
        for line in child.stderr:
            output.append(line)
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + startup_s
    url = None
    try:
        while url is None:
            try:
                line = lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                raise RuntimeError(f"the service did not start: {''.join(output)[-2000:]}") from None
            found = re.search(r"Uvicorn running on (http://127\.0\.0\.1:\d+)", line)
            url = found.group(1) if found else None
        yield child, url
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(30)
