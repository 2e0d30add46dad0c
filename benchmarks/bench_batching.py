"""Micro-batching: many concurrent single-pair callers on one ``Protector``, batching on against off.

    python benchmarks/bench_batching.py [--clients 64] [--pairs 512] [--max-batch-size 32] [--max-wait-ms 5]

Each of ``--clients`` threads checks its share of ``--pairs`` pairs one at a time, all at once. Prints pairs/s
and per-call latency (p50, p99) with micro-batching off (every call its own forward pass) and on (concurrent
calls share passes), and a batched in-process ``check`` of all pairs as the reference; all in this run, in
``--rounds`` interleaved rounds, the best round of each shown (the fairest figure on a shared machine).
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch
from bench_detector import mixed_pairs

from protector_models import Pair, Protector
from protector_models.config.schema import BatchingConfig


@dataclass(frozen=True)
class Load:
    """Throughput and per-call latency of one concurrent run."""

    pairs_per_s: float
    p50_ms: float
    p99_ms: float

    def row(self, name: str) -> str:
        return f"| {name} | {self.pairs_per_s:.1f} | {self.p50_ms:.0f} | {self.p99_ms:.0f} |"


def concurrent_load(call: Callable[[list[Pair]], object], pairs: Sequence[Pair], clients: int) -> Load:
    """``clients`` threads, each calling ``call([pair])`` over its share of ``pairs``, started together."""
    shares = [pairs[i::clients] for i in range(clients)]
    start = threading.Barrier(clients + 1)
    latencies: list[float] = []
    lock = threading.Lock()

    def client(share: Sequence[Pair]) -> None:
        start.wait()
        mine = []
        for pair in share:
            began = time.perf_counter()
            call([pair])
            mine.append(time.perf_counter() - began)
        with lock:
            latencies.extend(mine)

    with ThreadPoolExecutor(clients) as pool:
        futures = [pool.submit(client, share) for share in shares]
        start.wait()
        began = time.perf_counter()
        for future in futures:
            future.result()
        seconds = time.perf_counter() - began
    return summarise(len(pairs), seconds, latencies)


def summarise(count: int, seconds: float, latencies: list[float]) -> Load:
    """A :class:`Load` from a run's pair count, wall time and per-call latencies."""
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return Load(count / seconds, cuts[49] * 1000, cuts[98] * 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--pairs", type=int, default=512)
    parser.add_argument("--preset", default="default")
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=1, help="Batcher threads scoring batches at once.")
    parser.add_argument("--rounds", type=int, default=3, help="Interleaved rounds; the best of each is shown.")
    options = parser.parse_args()

    pairs = mixed_pairs(options.pairs)
    plain = Protector.from_preset(options.preset).load()
    batching = BatchingConfig(
        max_batch_size=options.max_batch_size, max_wait_ms=options.max_wait_ms, workers=options.workers
    )
    batched = Protector(plain.detector, threshold=plain.threshold, batching=batching).load()
    plain.check(pairs[:32])  # warm-up

    sizes: list[int] = []
    assert batched.batcher is not None
    batched.batcher.add_observer(lambda stats: sizes.append(stats.pairs))
    in_process, offs, ons = 0.0, [], []
    for _ in range(options.rounds):  # interleaved, so that a change in the machine's load hits all three alike
        started = time.perf_counter()
        plain.check(pairs)
        in_process = max(in_process, len(pairs) / (time.perf_counter() - started))
        offs.append(concurrent_load(plain.check, pairs, options.clients))
        ons.append(concurrent_load(batched.check, pairs, options.clients))
    batched.close()
    off, on = (max(loads, key=lambda load: load.pairs_per_s) for loads in (offs, ons))

    print(
        f"preset={options.preset} pairs={len(pairs)} clients={options.clients} torch_threads={torch.get_num_threads()} "
        f"rounds={options.rounds} load_1min_incl_this_run={os.getloadavg()[0]:.1f} "
        f"max_batch_size={options.max_batch_size} max_wait_ms={options.max_wait_ms:g} workers={options.workers}"
    )
    print("| run | pairs/s | p50 ms | p99 ms |\n|---|---|---|---|")
    print(f"| in-process `check(all pairs)`, one call | {in_process:.1f} | | |")
    print(off.row(f"{options.clients} callers, batching off"))
    print(on.row(f"{options.clients} callers, batching on"))
    print(f"batching on / off: {on.pairs_per_s / off.pairs_per_s:.2f}x throughput")
    print(f"batches: {len(sizes)}, mean {statistics.mean(sizes):.1f} pairs, max {max(sizes)}")


if __name__ == "__main__":
    main()
