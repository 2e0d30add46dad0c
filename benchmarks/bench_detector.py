"""Detector throughput: batched ``Protector.check`` against the paper's one-pair loop and a bare forward pass.

    python benchmarks/bench_detector.py [--pairs 256] [--batch-size 32] [--preset default]

Prints pairs/s for (a) ``Protector.check`` (length-sorted batches), (b) the same model called one pair at a
time, (c) a bare ``model(**batch)`` over the same padded batches (the limit), and the ratios between them,
all measured in this run (best of ``--repeats``), plus peak RSS.
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import time
from collections.abc import Callable

import torch

from protector_models import ClassifierDetector, Pair, Protector
from protector_models.batching import length_sorted_batches, pad_features

WORDS = [
    "the",
    "a",
    "model",
    "answer",
    "question",
    "image",
    "shows",
    "how",
    "to",
    "make",
    "safe",
    "step",
    "first",
    "then",
    "water",
    "heat",
    "light",
    "can",
    "will",
]


def mixed_pairs(count: int, seed: int = 0) -> list[Pair]:
    """Pairs whose answers run from a few words to several hundred (long ones get truncated)."""
    generator = random.Random(seed)
    pairs = []
    for _ in range(count):
        answer_words = int(generator.lognormvariate(4.0, 1.0)) + 3
        question = " ".join(generator.choices(WORDS, k=generator.randint(5, 40)))
        pairs.append(Pair(question, " ".join(generator.choices(WORDS, k=answer_words))))
    return pairs


def best_rate(count: int, run: Callable[[], object], repeats: int) -> float:
    """Pairs per second of the fastest of ``repeats`` runs."""
    fastest = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        fastest = min(fastest, time.perf_counter() - started)
    return count / fastest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--preset", default="default")
    parser.add_argument("--repeats", type=int, default=3)
    options = parser.parse_args()

    protector = Protector.from_preset(options.preset, detector={"batch_size": options.batch_size}).load()
    detector = protector.detector
    assert isinstance(detector, ClassifierDetector)
    pairs = mixed_pairs(options.pairs)
    protector.check(pairs[:8])  # warm-up

    features, _ = detector.encoder.encode(pairs)
    lengths = [len(ids) for ids in features["input_ids"]]
    batches = [
        pad_features(features, chunk, pad_token_id=detector.tokenizer.pad_token_id)
        for chunk in length_sorted_batches(lengths, options.batch_size)
    ]

    def bare_forward() -> None:
        with torch.inference_mode():
            for batch in batches:
                detector.model(**batch)

    batched = best_rate(len(pairs), lambda: protector.check(pairs), options.repeats)
    single = best_rate(len(pairs), lambda: [protector.check([pair]) for pair in pairs], options.repeats)
    bare = best_rate(len(pairs), bare_forward, options.repeats)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    print(
        f"preset={options.preset} pairs={len(pairs)} batch_size={options.batch_size} device={detector.device} "
        f"threads={torch.get_num_threads()} mean_tokens={sum(lengths) / len(lengths):.0f}"
    )
    print(f"(a) Protector.check, batched : {batched:8.1f} pairs/s")
    print(f"(b) one pair at a time       : {single:8.1f} pairs/s")
    print(f"(c) bare forward, same batches: {bare:8.1f} pairs/s")
    print(f"(a)/(c) = {batched / bare:.2f}")
    print(f"(a)/(b) = {batched / single:.1f}")
    print(f"peak RSS: {peak_mb:.0f} MiB")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
