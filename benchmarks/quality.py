"""Detector quality over every labelled JSON Lines file in a folder, as one table (trains nothing).

python benchmarks/quality.py ../shared/data/dev [--preset default | --config protector.yaml] [--threshold T]
    [--answer-only] [--json] [--scores DIR]

Besides F1, AUROC, PR-AUC and FPR per file, it reports recall on harmful answers longer than 512 tokens beside
recall on the shorter ones, so reading whole answers can be checked.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from protector_models import ClassifierDetector, Protector, ProtectorError
from protector_models.cli.evaluate import HEADER, metrics_row
from protector_models.data.labelled import LabelledPair, read_labelled
from protector_models.evaluation.evaluate import evaluate

LONG_TOKENS = 512


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--preset", default="default")
    parser.add_argument("--config", type=Path)
    parser.add_argument("--threshold", type=float)
    parser.add_argument("--answer-only", action="store_true", help="leave every question out (as `model | guard`)")
    parser.add_argument("--json", action="store_true", help="one JSON object per file instead of the table")
    parser.add_argument("--scores", type=Path, help="write each file's scores here as FILE.scores.json")
    options = parser.parse_args()
    files = sorted(options.folder.glob("*.jsonl"))
    if not files:
        sys.exit(f"error: no *.jsonl files in {options.folder}; give a folder of labelled JSON Lines")
    protector = Protector.from_yaml(options.config) if options.config else Protector.from_preset(options.preset)
    protector.load()
    if not options.json:
        print(f"{'file':28}{HEADER[28:]} {'pairs/s':>8} {'recall >512 tok (n)':>20} {'recall <=512':>12}")
    for path in files:
        examples = read_labelled(path)
        if options.answer_only:
            examples = [LabelledPair("", e.answer, e.harmful, e.source, e.category) for e in examples]
        started = time.perf_counter()
        result = evaluate(protector, examples, options.threshold)
        rate = len(examples) / (time.perf_counter() - started)
        long_recall, long_n, short_recall = _recall_by_length(
            protector, examples, result.scores, result.overall.threshold
        )
        if options.scores:
            options.scores.mkdir(parents=True, exist_ok=True)
            (options.scores / f"{path.stem}.scores.json").write_text(json.dumps(result.scores))
        metrics = result.overall
        if options.json:
            lengths = {"recall_long": long_recall, "harmful_long": long_n, "recall_short": short_recall}
            print(json.dumps({"file": path.name, **metrics.as_dict(), **lengths, "pairs_per_s": round(rate, 1)}))
        else:
            lengths_text = f"{_pct(long_recall):>14} ({long_n:3d}) {_pct(short_recall):>12}"
            print(f"{metrics_row(path.name, metrics)} {rate:8.1f} {lengths_text}")


def _recall_by_length(
    protector: Protector, examples: list[LabelledPair], scores: list[float], threshold: float
) -> tuple[float | None, int, float | None]:
    """Recall on harmful answers longer than :data:`LONG_TOKENS` tokens, their count, and recall on the rest."""
    detector = protector.detector
    if not isinstance(detector, ClassifierDetector):
        return None, 0, None
    harmful = [i for i, e in enumerate(examples) if e.harmful]
    if not harmful:
        return None, 0, None
    answers = [examples[i].answer for i in harmful]
    lengths = detector.tokenizer(answers, add_special_tokens=False, verbose=False)["input_ids"]  # only counted
    long = [i for i, ids in zip(harmful, lengths, strict=True) if len(ids) > LONG_TOKENS]
    short = sorted(set(harmful) - set(long))

    def recall(indices: list[int]) -> float | None:
        hits = sum(1 for i in indices if scores[i] >= threshold)
        return hits / len(indices) if indices else None

    return recall(long), len(long), recall(short)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


if __name__ == "__main__":
    try:
        main()
    except ProtectorError as error:  # bad data or config: the message says what and where, no traceback
        sys.exit(f"error: {error}")
