"""How much a cascade sends on: for a few bands, the share of labelled pairs the first detector (the default)
scores inside the band (those go to the guard LM), per file and overall, and the errors the first detector keeps
by deciding the rest alone; then what the cascade costs against the guard alone.

    python benchmarks/cascade_report.py ../shared/data/dev [--preset default | --config protector.yaml]
        [--bands 0.05:0.95,0.1:0.9,0.2:0.9,0.3:0.8] [--threshold T] [--scores DIR] [--guard-ms 25,100]

``--scores DIR`` reads the first detector's scores that ``benchmarks/quality.py --scores DIR`` wrote (same files,
same order) instead of scoring again. The cost of a pair through the cascade is the first detector's cost plus,
for the share sent on, the guard's: against the guard alone, ``share + first_ms / guard_ms``. ``first_ms`` is
measured in this run by wall time (unless ``--scores``; ``--first-ms`` sets it); ``--guard-ms`` gives the guard's
cost per pair, measured elsewhere (a GPU, ``bench_detector.py --shape llama-guard-3-8b``): this script runs no
guard LM.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from protector_models import Protector
from protector_models.data.labelled import LabelledPair, read_labelled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--preset", default="default")
    parser.add_argument("--config", type=Path)
    parser.add_argument("--bands", default="0.05:0.95,0.1:0.9,0.2:0.9,0.3:0.8")
    parser.add_argument("--threshold", type=float, help="the first detector's own (default: its config's)")
    parser.add_argument("--scores", type=Path, help="read FILE.scores.json from here (quality.py --scores)")
    parser.add_argument("--guard-ms", default="", help="guard LM cost per pair, ms (comma-separated values)")
    parser.add_argument("--first-ms", type=float, help="the first detector's cost per pair, ms (default: measured)")
    options = parser.parse_args()
    bands = [tuple(float(x) for x in band.split(":")) for band in options.bands.split(",")]
    protector = Protector.from_yaml(options.config) if options.config else Protector.from_preset(options.preset)
    threshold = protector.threshold if options.threshold is None else options.threshold
    files: dict[str, tuple[list[LabelledPair], list[float]]] = {}
    seconds = cpu_seconds = 0.0
    for path in sorted(options.folder.glob("*.jsonl")):
        examples = read_labelled(path)
        if options.scores:
            scores = json.loads((options.scores / f"{path.stem}.scores.json").read_text())
        else:
            started, cpu_started = time.perf_counter(), time.process_time()
            scores = [v.harm_score for v in protector.check([(e.question, e.answer) for e in examples])]
            seconds += time.perf_counter() - started
            cpu_seconds += time.process_time() - cpu_started
        files[path.name] = (examples, scores)
    total = sum(len(examples) for examples, _ in files.values())
    first_ms = options.first_ms if options.first_ms is not None else 1000 * seconds / total if seconds else None
    source = f"config {options.config}" if options.config else f"preset {options.preset}"
    print(f"first detector: {source}, threshold {threshold:g}; {total} pairs in {len(files)} files")
    if seconds:
        cpu_ms = 1000 * cpu_seconds / total
        wall_ms = 1000 * seconds / total
        print(f"first detector cost, measured here: {wall_ms:.2f} ms/pair by wall time, {cpu_ms:.2f} by CPU time")
    header = "".join(f"{f'[{low:g}, {high:g}]':>16}" for low, high in bands)
    print(f"\nshare of pairs sent on to the guard (inside the band)\n{'file':28}{header}")
    rows = [*files.items(), ("all", _merged(files))]
    for name, (_examples, scores) in rows:
        shares = [sum(low <= s <= high for s in scores) / len(scores) for low, high in bands]
        print(f"{name:28}" + "".join(f"{100 * share:15.1f}%" for share in shares))
    print(f"\nerrors the first detector keeps: wrong at threshold {threshold:g} and outside the band (of all pairs)")
    print(f"{'file':28}{header}")
    for name, (examples, scores) in rows:
        kept = [
            sum(
                1
                for e, s in zip(examples, scores, strict=True)
                if not low <= s <= high and (s >= threshold) != e.harmful
            )
            / len(scores)
            for low, high in bands
        ]
        print(f"{name:28}" + "".join(f"{100 * share:15.2f}%" for share in kept))
    guard_costs = [float(x) for x in options.guard_ms.split(",") if x]
    if guard_costs and first_ms is not None:
        _, scores = rows[-1][1]
        print("\ncascade cost against the guard alone (share + first_ms / guard_ms)")
        print(f"{'guard ms/pair':28}{header}")
        for guard_ms in guard_costs:
            ratios = [sum(low <= s <= high for s in scores) / len(scores) + first_ms / guard_ms for low, high in bands]
            print(f"{guard_ms:<28g}" + "".join(f"{ratio:16.3f}" for ratio in ratios))


def _merged(files: dict[str, tuple[list[LabelledPair], list[float]]]) -> tuple[list[LabelledPair], list[float]]:
    examples = [e for pairs, _ in files.values() for e in pairs]
    scores = [s for _, values in files.values() for s in values]
    return examples, scores


if __name__ == "__main__":
    main()
