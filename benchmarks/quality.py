"""Detector quality over every labelled JSON Lines file in a folder, as one table (trains nothing).

python benchmarks/quality.py ../shared/data/dev [--preset default | --config protector.yaml] [--threshold T]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from protector_models import Protector
from protector_models.cli.evaluate import HEADER, metrics_row
from protector_models.data import read_labelled
from protector_models.evaluation import evaluate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--preset", default="default")
    parser.add_argument("--config", type=Path)
    parser.add_argument("--threshold", type=float)
    parser.add_argument("--json", action="store_true", help="one JSON object per file instead of the table")
    options = parser.parse_args()
    protector = Protector.from_yaml(options.config) if options.config else Protector.from_preset(options.preset)
    protector.load()
    files = sorted(options.folder.glob("*.jsonl"))
    if not options.json:
        print(f"{'file':28}{HEADER[28:]} {'pairs/s':>8}")
    for path in files:
        examples = read_labelled(path)
        started = time.perf_counter()
        metrics = evaluate(protector, examples, options.threshold).overall
        rate = len(examples) / (time.perf_counter() - started)
        if options.json:
            print(json.dumps({"file": path.name, **metrics.as_dict(), "pairs_per_s": round(rate, 1)}))
        else:
            print(f"{metrics_row(path.name, metrics)} {rate:8.1f}")


if __name__ == "__main__":
    main()
