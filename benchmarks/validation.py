"""A detector on the validation split that `train-detector` carves from the same files (trains nothing).

python benchmarks/validation.py TRAIN.jsonl [...] [--preset default | --config protector.yaml] [--seed N]
    [--spliced] [--mismatched] [--scores FILE]

The split is the training command's (10% of each source and label, seeded), so detectors trained on the same files
with the same seed are compared on rows none of them saw. The seed and fraction default to those in the adapter's
`training_args.json`, else train-detector's defaults: another seed's split holds rows the detector trained on. The
figure is the rule that picks the threshold: the mean over sources of F1, or of 1 - false-alarm rate for sources
without harmful rows. Prints it at the detector's threshold and at the best one, the pooled AUROC, and each
source's figures. `--spliced` also scores rows spliced from the validation rows alone (`train-detector --splice`,
with another seed): whether harm late in a long answer is caught; and the rule again with those rows as one more
source, so reading whole answers weighs in a comparison. `--mismatched` does the same with rows mismatched from the
validation rows alone (`train-detector --mismatch`): answers under another row's question, keeping their label, so
judging the answer rather than the question weighs in. `--scores` writes every scored row's label, score and
source (the extra rows included) as JSON, to study other thresholds without scoring again.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from protector_models import Protector
from protector_models.config.schema import ProtectorConfig
from protector_models.data.labelled import LabelledPair, read_labelled
from protector_models.errors import ProtectorError
from protector_models.evaluation.metrics import auroc, binary_metrics, source_balanced_threshold, source_figures
from protector_models.models.bundled import BUNDLED
from protector_models.training.args import DetectorTrainingArgs
from protector_models.training.detector import split_validation
from protector_models.training.mismatching import validation_mismatched
from protector_models.training.splicing import validation_spliced


def mean_figures(labels: Sequence[bool], scores: Sequence[float], sources: Sequence[str], threshold: float) -> dict:
    """The rule's mean over sources and each source's figure at ``threshold``, in percent."""
    figures = source_figures(labels, scores, sources, threshold)
    figures = {name: round(100 * value, 2) for name, value in figures.items()}
    return {"mean": round(sum(figures.values()) / len(figures), 2), "per_source": figures}


def harm_scores(protector: Protector, examples: Sequence[LabelledPair]) -> list[float]:
    """Each pair's harm score; exits when one could not be scored (the log says why)."""
    scores = [verdict.harm_score for verdict in protector.check([e.pair for e in examples])]
    if any(score is None for score in scores):
        raise SystemExit("error: some pairs could not be scored; see the log")
    return [float(score) for score in scores if score is not None]


SPLIT_KEYS = ("val_fraction", "seed")
"""The training settings that decide the validation split."""


def trained_split(config: ProtectorConfig) -> dict:
    """The ``val_fraction`` and ``seed`` the detector was trained with: the ``training_args.json`` that
    ``train-detector`` saves beside its adapter, or its whole model; empty when there is none (a hub model)."""
    model = getattr(config.detector, "model", None)
    if model is None:
        return {}
    name = model.adapter or model.source
    folder = BUNDLED[name].path() if name in BUNDLED else Path(name)  # a relative one is resolved at load
    record = folder / "training_args.json"
    if not record.is_file():
        return {}
    args = json.loads(record.read_text())
    return {key: args[key] for key in SPLIT_KEYS if key in args}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path, nargs="+")
    parser.add_argument("--preset", default="default")
    parser.add_argument("--config", type=Path)
    parser.add_argument("--val-fraction", type=float, help="default: the training run's, else train-detector's")
    parser.add_argument("--seed", type=int, help="default: the training run's, else train-detector's")
    parser.add_argument("--spliced", action="store_true", help="also score spliced validation rows")
    parser.add_argument("--mismatched", action="store_true", help="also score mismatched validation rows")
    parser.add_argument("--scores", type=Path, help="write each row's label, score and source here (JSON)")
    options = parser.parse_args()
    if options.config:
        config = ProtectorConfig.from_yaml(options.config)
    else:
        config = ProtectorConfig.from_preset(options.preset)
    trained = trained_split(config)
    asked = {key: getattr(options, key) for key in SPLIT_KEYS if getattr(options, key) is not None}
    for key in sorted(asked.keys() & trained.keys()):
        if asked[key] != trained[key]:
            print(f"warning: trained with {key} {trained[key]}: this split holds rows it trained on", file=sys.stderr)
    defaults = DetectorTrainingArgs(output_dir="")  # train-detector's own defaults
    split = {**{key: getattr(defaults, key) for key in SPLIT_KEYS}, **trained, **asked}
    examples = [pair for path in options.data for pair in read_labelled(path)]
    _, validation = split_validation(examples, split["val_fraction"], split["seed"])
    protector = Protector.from_config(config)
    checked = harm_scores(protector, validation)
    labels, sources = [e.harmful for e in validation], [e.source for e in validation]
    best = source_balanced_threshold(labels, checked, sources)
    at_config, at_best = (mean_figures(labels, checked, sources, t) for t in (protector.threshold, best))
    result = {
        "pairs": len(validation),
        "split": split,
        "threshold": protector.threshold,
        "mean_over_sources": at_config["mean"],
        "best_threshold": round(best, 4),
        "mean_over_sources_at_best": at_best["mean"],
        "auroc": round(100 * (auroc(labels, checked) or 0.0), 2),
        "per_source": at_config["per_source"],
    }
    extras = {
        "spliced": validation_spliced(validation) if options.spliced else [],
        "mismatched": validation_mismatched(validation) if options.mismatched else [],
    }
    for name, rows in extras.items():
        if not rows:
            continue
        scores = harm_scores(protector, rows)
        metrics = binary_metrics([e.harmful for e in rows], scores, protector.threshold)
        result[name] = {k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.as_dict().items()}
        # the rule with these rows as one more source, as train-detector weighs them
        labels += [e.harmful for e in rows]
        checked += scores
        sources += [e.source for e in rows]
    if any(extras.values()):
        best = source_balanced_threshold(labels, checked, sources)
        result["with_" + "_and_".join(name for name, rows in extras.items() if rows)] = {
            "mean_over_sources": mean_figures(labels, checked, sources, protector.threshold)["mean"],
            "best_threshold": round(best, 4),
            "mean_over_sources_at_best": mean_figures(labels, checked, sources, best)["mean"],
        }
    if options.scores:
        rows = {"threshold": protector.threshold, "labels": labels, "scores": checked, "sources": sources}
        options.scores.write_text(json.dumps(rows))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    try:
        main()
    except ProtectorError as error:  # bad data, config or model files: the message says what and where
        sys.exit(f"error: {error}")
