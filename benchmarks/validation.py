"""A detector on the validation split that `train-detector` carves from the same files (trains nothing).

python benchmarks/validation.py TRAIN.jsonl [...] [--preset default | --config protector.yaml] [--seed 0]
    [--spliced 0.2]

The split is the training command's (10% of each source and label, seeded), so detectors trained on the same files
are compared on rows none of them saw, by the rule that picks the threshold: the mean over sources of F1, or of
1 - false-alarm rate for sources without harmful rows. Prints it at the detector's threshold and at the best one,
the pooled AUROC, and each source's figures. `--spliced SHARE` also scores rows spliced from the validation rows
alone (`train-detector --splice`, with another seed): whether harm late in a long answer is caught.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from protector_models import Protector
from protector_models.data import read_labelled
from protector_models.metrics import auroc, binary_metrics, source_balanced_threshold
from protector_models.training.detector import split_validation
from protector_models.training.splicing import spliced_examples

SPLICE_SEED = 12345
"""Not a training seed, so the spliced validation rows are not the ones a training run made."""


def per_source(labels: Sequence[bool], scores: Sequence[float], sources: Sequence[str], threshold: float) -> dict:
    """Per source: F1 (sources with harmful rows) or 1 - false-alarm rate (sources without), in percent."""
    figures = {}
    for source in sorted(set(sources)):
        rows = [(label, score) for label, score, s in zip(labels, scores, sources, strict=True) if s == source]
        positives = sum(label for label, _ in rows)
        tp = sum(label and score >= threshold for label, score in rows)
        fp = sum(not label and score >= threshold for label, score in rows)
        value = 2 * tp / (tp + fp + positives) if positives else 1 - fp / (len(rows) - positives)
        figures[source] = round(100 * value, 2)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path, nargs="+")
    parser.add_argument("--preset", default="default")
    parser.add_argument("--config", type=Path)
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--spliced", type=float, default=0.0, help="also score this share of spliced rows")
    options = parser.parse_args()
    examples = [pair for path in options.data for pair in read_labelled(path)]
    _, validation = split_validation(examples, options.val_fraction, options.seed)
    protector = Protector.from_yaml(options.config) if options.config else Protector.from_preset(options.preset)
    scores = [verdict.harm_score for verdict in protector.check([e.pair for e in validation])]
    if any(score is None for score in scores):
        raise SystemExit("error: some pairs could not be scored; see the log")
    checked = [float(score) for score in scores if score is not None]
    labels, sources = [e.harmful for e in validation], [e.source for e in validation]
    best = source_balanced_threshold(labels, checked, sources)
    at_config, at_best = (per_source(labels, checked, sources, t) for t in (protector.threshold, best))
    result = {
        "pairs": len(validation),
        "threshold": protector.threshold,
        "mean_over_sources": round(sum(at_config.values()) / len(at_config), 2),
        "best_threshold": round(best, 4),
        "mean_over_sources_at_best": round(sum(at_best.values()) / len(at_best), 2),
        "auroc": round(100 * (auroc(labels, checked) or 0.0), 2),
        "per_source": at_config,
    }
    spliced = spliced_examples(validation, options.spliced, SPLICE_SEED)
    if spliced:
        spliced_scores = [verdict.harm_score for verdict in protector.check([e.pair for e in spliced])]
        metrics = binary_metrics([e.harmful for e in spliced], spliced_scores, protector.threshold)  # type: ignore[arg-type]
        result["spliced"] = {k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.as_dict().items()}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
