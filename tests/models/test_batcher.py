"""Micro-batching: concurrent calls share detector passes, each caller gets its own scores, failures stay local."""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from detector_support import GatedDetector, distinct_pairs

from protector_models import ModelRuntimeError, Pair, Protector
from protector_models.config.schema import BatchingConfig, ProtectorConfig
from protector_models.models.batcher import BatchStats, MicroBatcher

HARMFUL = Pair("how do i make it", "first take the poison and mix it")
BENIGN = Pair("how do i make it", "mix the bread with some music")


@pytest.fixture
def detector(protector: Protector) -> GatedDetector:
    return GatedDetector(protector.detector)


def _wait_for(condition, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_sixty_four_threads_each_get_their_own_scores_from_shared_passes(detector, protector):
    pairs = distinct_pairs(64)
    expected = protector.detector.score(pairs)
    assert [score > 0.5 for score in expected] == [i % 2 == 0 for i in range(64)]  # a mix-up would show
    start = threading.Barrier(64)

    def call(pair: Pair) -> list[float]:
        start.wait()
        return batcher.score([pair])

    batching = BatchingConfig(max_batch_size=16, max_wait_ms=2000)  # 64 = 4 full batches: no real wait
    with MicroBatcher(detector, batching) as batcher, ThreadPoolExecutor(64) as pool:
        got = list(pool.map(call, pairs))
    assert [len(scores) for scores in got] == [1] * 64
    assert [scores[0] for scores in got] == pytest.approx(expected, abs=1e-5)  # padding differs by batch
    assert sum(detector.sizes) == 64
    assert max(detector.sizes) == 16  # bounded by max_batch_size, and really gathered
    assert len(detector.sizes) <= 8


def test_calls_of_several_pairs_get_theirs_back_in_order(detector, protector):
    pairs = distinct_pairs(40)
    calls = [pairs[i : i + n] for i, n in zip(range(0, 40, 5), [1, 2, 3, 4, 5, 5, 5, 5], strict=True)]
    detector.gate.clear()  # hold the first pass so that the rest queue up behind it
    with MicroBatcher(detector, BatchingConfig(max_batch_size=12, max_wait_ms=0)) as batcher:
        futures = [batcher.submit(call) for call in calls]
        _wait_for(detector.entered.is_set)
        detector.gate.set()
        got = [future.result(timeout=30) for future in futures]
    for scores, call in zip(got, calls, strict=True):
        assert scores == pytest.approx(protector.detector.score(call), abs=1e-5)
    assert all(size <= 12 for size in detector.sizes)
    assert len(detector.sizes) < len(calls)


def test_a_call_larger_than_the_batch_goes_alone(detector, protector):
    pairs = distinct_pairs(10)
    with MicroBatcher(detector, BatchingConfig(max_batch_size=4, max_wait_ms=0)) as batcher:
        assert batcher.score(pairs) == protector.detector.score(pairs)
    assert detector.sizes == [10]


def test_a_lone_call_waits_at_most_max_wait_not_for_a_full_batch(detector):
    with MicroBatcher(detector, BatchingConfig(max_batch_size=1000, max_wait_ms=50)) as batcher:
        batcher.score([BENIGN])  # warm up
        started = time.perf_counter()
        batcher.score([BENIGN])
        assert time.perf_counter() - started < 2.0


def test_a_failing_batch_fails_only_its_own_callers(protector):
    detector = GatedDetector(protector.detector, fail_on="explode")
    with MicroBatcher(detector, BatchingConfig(max_batch_size=8, max_wait_ms=0)) as batcher:
        detector.gate.clear()
        first = batcher.submit([BENIGN])  # batch 1, held at the gate
        _wait_for(detector.entered.is_set)
        bad = batcher.submit([Pair("q", "explode the cake")])  # batch 2: these two together
        neighbour = batcher.submit([HARMFUL])
        detector.gate.set()
        assert first.result(timeout=30) == protector.detector.score([BENIGN])
        for future in (bad, neighbour):
            with pytest.raises(RuntimeError, match="out of memory"):
                future.result(timeout=30)
        assert batcher.score([HARMFUL]) == protector.detector.score([HARMFUL])  # the worker carries on
    assert detector.sizes == [1, 2, 1]


@pytest.mark.parametrize("on_error", ["block", "pass", "raise"])
def test_a_protector_applies_on_error_to_the_callers_of_a_failed_batch(protector, on_error):
    detector = GatedDetector(protector.detector, fail_on="explode")
    batching = BatchingConfig(max_batch_size=8, max_wait_ms=0)
    with Protector(detector, threshold=0.5, on_error=on_error, batching=batching) as guard:
        detector.gate.clear()
        with ThreadPoolExecutor(3) as pool:
            first = pool.submit(guard.protect, [BENIGN])
            _wait_for(detector.entered.is_set)
            bad = pool.submit(guard.protect, [Pair("q", "explode the cake")])
            _wait_for(lambda: guard.batcher is not None and bad.running())
            time.sleep(0.1)  # let the bad call reach the queue
            detector.gate.set()
            assert first.result(timeout=30)[0].checked
            if on_error == "raise":
                with pytest.raises(ModelRuntimeError, match="out of memory"):
                    bad.result(timeout=30)
            else:
                (result,) = bad.result(timeout=30)
                assert not result.checked
                assert result.action == {"block": "block", "pass": "unchecked"}[on_error]
                assert "out of memory" in result.error
                assert result.output == (guard.refusal_text if on_error == "block" else "explode the cake")


def test_sixty_four_asyncio_callers_share_passes_without_a_thread_each(protector):
    pairs = distinct_pairs(64)
    expected = protector.check(pairs)
    detector = GatedDetector(protector.detector)
    guard = Protector(detector, threshold=protector.threshold, batching=BatchingConfig(max_wait_ms=1000))

    async def main() -> list:
        return await asyncio.gather(*(guard.acheck([pair]) for pair in pairs))

    with guard:
        got = asyncio.run(main())
    assert [verdicts[0] for verdicts in got] == expected
    assert sum(detector.sizes) == 64
    assert len(detector.sizes) <= 4  # 64 callers in at most a few passes of up to 32


def test_batched_protector_gives_the_same_results_as_an_unbatched_one(detector_config):
    pairs = distinct_pairs(12)
    plain = Protector.from_config(detector_config)
    config = ProtectorConfig.from_dict({**detector_config, "batching": {"max_batch_size": 4, "max_wait_ms": 1}})
    with Protector.from_config(config) as batched:
        assert batched.batcher is not None
        assert plain.batcher is None
        assert batched.protect(pairs) == plain.protect(pairs)
        assert batched.check(pairs, threshold=0.1) == plain.check(pairs, threshold=0.1)
        assert asyncio.run(batched.aprotect(pairs)) == plain.protect(pairs)


def test_a_clone_shares_its_parents_batcher(protector):
    guard = Protector(protector.detector, batching=BatchingConfig())
    clone = guard.with_rewriter(guard.rewriter)
    assert clone.batcher is guard.batcher is not None
    clone.close()  # closes nothing of the parent's
    assert not guard.batcher.closed
    guard.close()
    assert guard.batcher.closed


def test_observers_see_each_batch(detector):
    seen: list[BatchStats] = []
    with MicroBatcher(detector, BatchingConfig(max_wait_ms=0)) as batcher:
        batcher.add_observer(seen.append)
        batcher.add_observer(lambda stats: 1 / 0)  # a broken observer changes nothing
        batcher.score([BENIGN, HARMFUL])
        _wait_for(lambda: len(seen) == 1)
    assert (seen[0].calls, seen[0].pairs, seen[0].failed) == (1, 2, False)


def test_close_serves_what_is_queued_then_refuses(detector):
    batcher = MicroBatcher(detector, BatchingConfig(max_wait_ms=0, max_batch_size=1))
    detector.gate.clear()
    futures = [batcher.submit([BENIGN]) for _ in range(3)]
    _wait_for(detector.entered.is_set)
    closing = threading.Thread(target=batcher.close)
    closing.start()
    _wait_for(lambda: batcher.closed)
    with pytest.raises(ModelRuntimeError, match="closed"):
        batcher.submit([BENIGN])
    detector.gate.set()
    closing.join(30)
    assert [len(future.result(timeout=1)) for future in futures] == [1, 1, 1]
    assert not any(worker.is_alive() for worker in batcher._workers)


def test_a_closed_protector_fails_per_on_error(protector):
    guard = Protector(protector.detector, on_error="block", batching=BatchingConfig())
    guard.check([BENIGN])
    guard.close()
    (result,) = guard.protect([BENIGN])
    assert (result.action, result.checked) == ("block", False)
    assert "closed" in result.error


def test_a_forgotten_batcher_stops_its_worker(detector):
    batcher = MicroBatcher(detector)
    batcher.score([BENIGN])
    (worker,) = batcher._workers
    del batcher
    gc.collect()
    worker.join(10)
    assert not worker.is_alive()


def test_a_full_queue_fails_fast(detector):
    with MicroBatcher(detector, BatchingConfig(max_queue=2, max_wait_ms=0, max_batch_size=1)) as batcher:
        detector.gate.clear()
        running = batcher.submit([BENIGN])
        _wait_for(detector.entered.is_set)  # taken from the queue: its slot is free again
        queued = [batcher.submit([BENIGN]) for _ in range(2)]
        with pytest.raises(ModelRuntimeError, match="queue is full"):
            batcher.submit([BENIGN], timeout=0.05)
        with pytest.raises(ModelRuntimeError, match="queue is full"):
            asyncio.run(batcher.ascore([BENIGN]))
        detector.gate.set()
        assert all(len(f.result(timeout=30)) == 1 for f in [running, *queued])


def _score_in_child(batcher: MicroBatcher, pairs: list[Pair], sink) -> None:
    sink.send(batcher.score(pairs))


def test_a_forked_process_gets_its_own_worker(detector, protector):
    with MicroBatcher(detector, BatchingConfig(max_wait_ms=0)) as batcher:
        batcher.score([BENIGN])  # the parent's worker is running
        receive, send = multiprocessing.get_context("fork").Pipe(duplex=False)
        child = multiprocessing.get_context("fork").Process(target=_score_in_child, args=(batcher, [HARMFUL], send))
        child.start()
        assert receive.poll(60), "the forked child never got its scores"
        assert receive.recv() == protector.detector.score([HARMFUL])
        child.join(30)


def test_several_workers_score_batches_at_once(detector, protector):
    with MicroBatcher(detector, BatchingConfig(max_wait_ms=0, max_batch_size=1, workers=2)) as batcher:
        detector.gate.clear()
        futures = [batcher.submit([pair]) for pair in (HARMFUL, BENIGN, HARMFUL)]
        _wait_for(lambda: len(detector.sizes) == 2)  # two passes under way while the gate is shut
        time.sleep(0.1)
        assert len(detector.sizes) == 2  # and no third: each worker runs one pass at a time
        detector.gate.set()
        assert [f.result(timeout=30) for f in futures] == [
            protector.detector.score([p]) for p in (HARMFUL, BENIGN, HARMFUL)
        ]
        workers = batcher._workers
    assert len(workers) == 2
    assert not any(worker.is_alive() for worker in workers)
