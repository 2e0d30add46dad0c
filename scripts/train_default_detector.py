"""Train the embedded default detector on ../shared/data/train (never dev) and print validation metrics.

python scripts/train_default_detector.py --data ../shared/data/train --out runs/default-detector
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from protector_models.data import read_labelled
from protector_models.training import DetectorTrainingArgs, train_detector

TRAIN_FILES = (
    "pku_saferlhf.jsonl",
    "diasafety_train.jsonl",
    "safety_tuned_llamas.jsonl",
    "llm_self_defense.jsonl",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/train"))
    parser.add_argument("--out", default="runs/default-detector")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--targets", default="query,value")
    options = parser.parse_args()
    examples = [pair for name in TRAIN_FILES for pair in read_labelled(options.data / name)]
    args = DetectorTrainingArgs(
        output_dir=options.out,
        epochs=options.epochs,
        lora_rank=options.rank,
        lora_alpha=2 * options.rank,
        learning_rate=options.lr,
        max_length=options.max_length,
        lora_targets=options.targets.split(","),
    )
    started = time.perf_counter()
    outcome = train_detector(examples, args)
    print(
        json.dumps(
            {
                "seconds": round(time.perf_counter() - started),
                "threshold": outcome.threshold,
                "validation": outcome.validation.as_dict(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
