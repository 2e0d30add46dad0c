"""Cost of long answers: time grows with length, memory does not (each size runs in a fresh process).

python benchmarks/long_answers.py [--preset default] [--sizes 10000,100000,1000000] [--encode-only-size 10000000]

For each answer size (characters of ordinary prose) it prints the windows scored, seconds, seconds per 1,000
windows and the process's peak RSS; then, for one huge answer, the peak RSS of cutting it into windows alone.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

PROSE = "The bread rises overnight in a warm kitchen, and in the morning it is shaped, proofed and baked. "


def measure(preset: str, size: int, encode_only: bool) -> dict[str, float]:
    """Run in this process: score (or only window) one answer of ``size`` characters."""
    from protector_models import ClassifierDetector, Pair, Protector

    protector = Protector.from_preset(preset).load()
    detector = protector.detector
    assert isinstance(detector, ClassifierDetector)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    answer = (PROSE * (size // len(PROSE) + 1))[:size]
    pair = Pair("How do I bake bread?", answer)
    started = time.perf_counter()
    if encode_only:
        windows = sum(1 for _ in detector.encoder.windows([pair]))
    else:
        windows = sum(1 for _ in detector.encoder.windows([pair]))
        started = time.perf_counter()
        protector.check([pair])
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"size": size, "windows": windows, "seconds": seconds, "peak_mib": peak, "loaded_mib": baseline}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="default")
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--encode-only-size", type=int, default=10_000_000)
    parser.add_argument("--child", nargs=2, metavar=("SIZE", "MODE"), help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        print(json.dumps(measure(options.preset, int(options.child[0]), options.child[1] == "encode")))
        return
    runs = [(int(size), "score") for size in options.sizes.split(",")] + [(options.encode_only_size, "encode")]
    print(f"{'answer chars':>12} {'mode':>6} {'windows':>8} {'seconds':>8} {'s/1k win':>9} {'peak RSS MiB':>13}")
    for size, mode in runs:
        command = [sys.executable, __file__, "--preset", options.preset, "--child", str(size), mode]
        row = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
        per_k = 1000 * row["seconds"] / max(row["windows"], 1)
        print(
            f"{size:12,d} {mode:>6} {row['windows']:8d} {row['seconds']:8.2f} {per_k:9.2f} "
            f"{row['peak_mib']:8.0f} (model loaded: {row['loaded_mib']:.0f})"
        )


if __name__ == "__main__":
    main()
