"""The HTTP service against in-process scoring: throughput and latency with 1, 16 and 64 concurrent clients.

    python benchmarks/bench_serve.py [--pairs 512] [--preset default] [--max-batch-size 32] [--max-wait-ms 5]

In one run: (a) an in-process ``Protector.check`` of all pairs in one call (batched), (b) ``mllm-protector
serve`` in a child process with micro-batching, driven by 1, 16 and 64 concurrent clients that each send one
pair per request (closed loop), (c) the same service with ``--no-batching`` and 64 clients. Prints pairs/s and
per-request p50/p99 latency, and (b, 64 clients) / (a), whose goal is 0.7 or more. Both services run side by
side, in ``--rounds`` interleaved rounds; the best round of each run is shown (the fairest figure on a shared
machine). The client runs in this process (asyncio + httpx), on the same machine: its CPU time counts against
the service's. Torch threads: ``OMP_NUM_THREADS`` as set, for this process and the services alike.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx
import torch
from bench_batching import Load, summarise
from bench_detector import mixed_pairs

from protector_models import Pair, Protector

REPO = Path(__file__).resolve().parents[1]


@contextmanager
def service(*args: str) -> Iterator[str]:
    """``mllm-protector serve ARGS`` in a child process on a free loopback port; yields its base URL once healthy."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-c", "from protector_models.cli import app; app()", "serve", "--port", str(port), *args]
    child = subprocess.Popen(command, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while not _healthy(url):
            if child.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the service did not start")
            time.sleep(0.2)
        yield url
    finally:
        child.terminate()
        child.wait(60)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=5).status_code == 200
    except httpx.TransportError:
        return False


async def http_load(url: str, pairs: Sequence[Pair], clients: int) -> Load:
    """``clients`` concurrent clients, each posting its share of ``pairs`` one pair per request, in turn."""
    latencies: list[float] = []

    async def client(session: httpx.AsyncClient, share: Sequence[Pair]) -> None:
        for pair in share:
            began = time.perf_counter()
            reply = await session.post(
                "/v1/check", json={"pairs": [{"question": pair.question, "answer": pair.answer}]}
            )
            reply.raise_for_status()
            latencies.append(time.perf_counter() - began)

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=300) as session:
        await client(session, pairs[: min(clients, 8)])  # warm-up: connections, the model's first passes
        latencies.clear()
        began = time.perf_counter()
        await asyncio.gather(*(client(session, pairs[i::clients]) for i in range(clients)))
        seconds = time.perf_counter() - began
    return summarise(len(pairs), seconds, latencies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=512)
    parser.add_argument("--single-client-pairs", type=int, default=128, help="Pairs for the one-client run.")
    parser.add_argument("--preset", default="default")
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=1, help="Batcher threads scoring batches at once.")
    parser.add_argument("--rounds", type=int, default=2, help="Interleaved rounds; the best of each is shown.")
    options = parser.parse_args()
    pairs = mixed_pairs(options.pairs)

    protector = Protector.from_preset(options.preset).load()
    protector.check(pairs[:32])  # warm-up
    batching = ["--max-batch-size", str(options.max_batch_size), "--max-wait-ms", str(options.max_wait_ms)]
    batching += ["--batch-workers", str(options.workers)]
    runs = [(f"service, batching on, {clients} clients", "on", clients) for clients in (1, 16, 64)]
    runs.append(("service, batching off, 64 clients", "off", 64))
    best: dict[str, Load] = {}
    in_process = 0.0
    with (
        service("--preset", options.preset, "--log-level", "warning", *batching) as on_url,
        service("--preset", options.preset, "--log-level", "warning", "--no-batching") as off_url,
    ):
        for _ in range(options.rounds):  # interleaved: a change in the machine's load hits every run alike
            started = time.perf_counter()
            protector.check(pairs)
            in_process = max(in_process, len(pairs) / (time.perf_counter() - started))
            for name, mode, clients in runs:
                subset = pairs[: options.single_client_pairs] if clients == 1 else pairs
                load = asyncio.run(http_load(on_url if mode == "on" else off_url, subset, clients))
                if name not in best or load.pairs_per_s > best[name].pairs_per_s:
                    best[name] = load
    rows = [(name, best[name]) for name, _, _ in runs]

    print(
        f"preset={options.preset} pairs={len(pairs)} torch_threads={torch.get_num_threads()} cpus={os.cpu_count()} "
        f"load_1min_incl_this_run={os.getloadavg()[0]:.1f} "
        f"max_batch_size={options.max_batch_size} max_wait_ms={options.max_wait_ms:g} workers={options.workers}"
    )
    print("| run | pairs/s | p50 ms | p99 ms |\n|---|---|---|---|")
    print(f"| (a) in-process `check`, all pairs in one call | {in_process:.1f} | | |")
    for name, load in rows:
        print(load.row(name))
    on64, off64 = rows[2][1], rows[3][1]
    print(f"service with 64 clients / in-process batched: {on64.pairs_per_s / in_process:.2f} (goal >= 0.7)")
    print(f"micro-batching on / off, 64 clients: {on64.pairs_per_s / off64.pairs_per_s:.2f}x throughput")


if __name__ == "__main__":
    main()
