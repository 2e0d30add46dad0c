"""Splice augmentation: short answers inserted whole into long benign ones, labelled by what was inserted."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import pytest

from protector_models.data.labelled import LabelledPair
from protector_models.testing import save_tiny_classifier, toy_examples
from protector_models.training import DetectorTrainingArgs, train_detector
from protector_models.training.splicing import SPLICED_SOURCE, insert_paragraph, spliced_examples


def _long_benign(index: int) -> LabelledPair:
    paragraphs = [" ".join(f"host{index}-p{p}-w{w}" for w in range(60)) for p in range(5)]
    return LabelledPair(f"question {index}", "\n\n".join(paragraphs), False, source="long")


def _short(index: int, harmful: bool) -> LabelledPair:
    word = "harm" if harmful else "fine"
    return LabelledPair("q", " ".join(f"{word}{index}-{w}" for w in range(12)), harmful, source="short")


@pytest.fixture
def examples() -> list[LabelledPair]:
    return [_long_benign(i) for i in range(4)] + [_short(i, i % 2 == 0) for i in range(16)]


def test_spliced_rows_are_a_host_with_one_whole_passage_and_take_its_label(examples: list[LabelledPair]):
    spliced = spliced_examples(examples, 0.5, seed=0)
    assert len(spliced) == 10
    assert sum(row.harmful for row in spliced) == 5
    hosts = {e.question: e for e in examples if e.source == "long"}
    passages = {e.answer: e.harmful for e in examples if e.source == "short"}
    for row in spliced:
        assert row.source == SPLICED_SOURCE
        host = hosts[row.question]  # the host's own question
        paragraphs = row.answer.split("\n\n")
        inserted = [p for p in paragraphs if p in passages]
        assert len(inserted) == 1
        assert passages[inserted[0]] is row.harmful
        assert [p for p in paragraphs if p not in passages] == host.answer.split("\n\n")  # host kept, in order
        assert paragraphs[0] != inserted[0]  # never before the first paragraph


def test_passages_land_at_every_break_including_the_end(examples: list[LabelledPair]):
    positions = set()
    for row in spliced_examples(examples, 1.0, seed=1):
        paragraphs = row.answer.split("\n\n")
        positions.add(next(i for i, p in enumerate(paragraphs) if not p.startswith("host")))
    assert positions == {1, 2, 3, 4, 5}


def test_splicing_is_seeded(examples: list[LabelledPair]):
    assert spliced_examples(examples, 0.5, seed=3) == spliced_examples(examples, 0.5, seed=3)
    assert spliced_examples(examples, 0.5, seed=3) != spliced_examples(examples, 0.5, seed=4)


def test_nothing_is_spliced_without_long_benign_hosts_or_passages_of_both_labels(examples: list[LabelledPair]):
    assert spliced_examples([e for e in examples if e.source == "short"], 0.5, seed=0) == []
    assert spliced_examples([e for e in examples if not e.harmful], 0.5, seed=0) == []
    assert spliced_examples(examples, 0.0, seed=0) == []
    with pytest.raises(ValueError, match="splice must be within"):
        spliced_examples(examples, 1.5, seed=0)


def test_a_text_without_breaks_gets_the_paragraph_at_its_end():
    assert insert_paragraph("one block", "new", random.Random(0)) == "one block\n\nnew"


def test_training_adds_spliced_rows_to_the_training_split_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from protector_models.training import detector as training

    seen: list[int] = []
    original = training.source_weights
    monkeypatch.setattr(
        training, "source_weights", lambda sources, *rest: seen.append(len(sources)) or original(sources, *rest)
    )
    examples = toy_examples(40) + [_long_benign(i) for i in range(4)] + [_short(i, i % 2 == 0) for i in range(8)]
    base = save_tiny_classifier(tmp_path / "base")
    args = DetectorTrainingArgs(
        output_dir=str(tmp_path / "a"),
        base=str(base),
        epochs=1,
        batch_size=8,
        max_length=32,
        lora_targets=["query"],
        device="cpu",
    )
    plain = train_detector(examples, args)
    spliced = train_detector(examples, replace(args, output_dir=str(tmp_path / "b"), splice=0.5))
    assert seen[1] - seen[0] == round(0.5 * seen[0])  # the training split grew by the share
    assert spliced.validation.n == plain.validation.n  # validation stays natural rows


def test_with_splicing_the_threshold_rule_also_weighs_spliced_validation_rows(tmp_path: Path):
    from protector_models import Protector
    from protector_models.evaluation.metrics import source_balanced_threshold
    from protector_models.training.detector import split_validation
    from protector_models.training.splicing import validation_spliced

    examples = toy_examples(40) + [_long_benign(i) for i in range(8)] + [_short(i, i % 2 == 0) for i in range(8)]
    args = DetectorTrainingArgs(
        output_dir=str(tmp_path / "out"), base=str(save_tiny_classifier(tmp_path / "base")), epochs=1,
        batch_size=8, max_length=32, lora_targets=["query"], val_fraction=0.5, splice=0.5, device="cpu",
    )  # fmt: skip
    outcome = train_detector(examples, args)
    _, validation = split_validation(examples, args.val_fraction, args.seed)
    spliced = validation_spliced(validation)
    assert outcome.spliced_validation is not None
    assert outcome.spliced_validation.n == len(spliced) > 0
    protector = Protector.from_yaml(tmp_path / "out" / "protector.yaml")
    rows = validation + spliced
    scores = [verdict.harm_score for verdict in protector.check([e.pair for e in rows])]
    labels, sources = [e.harmful for e in rows], [e.source for e in rows]
    both = source_balanced_threshold(labels, scores, sources)
    natural = slice(0, len(validation))
    natural_only = source_balanced_threshold(labels[natural], scores[natural], sources[natural])
    assert outcome.threshold == pytest.approx(both, abs=1e-7)
    assert natural_only != pytest.approx(both, abs=1e-7)  # so this run tells the two rules apart


def test_same_source_draws_each_benign_passage_from_the_harmful_ones_source():
    """Harmful passages all come from "sensitive"; benign ones from there and from "everyday". By default benign
    passages come from both (the subject tells the label); with ``same_source`` only from "sensitive"."""
    hosts = [_long_benign(i) for i in range(4)]
    harmful = [replace(_short(i, True), source="sensitive") for i in range(0, 8, 2)]
    benign = [replace(_short(i, False), source=("sensitive", "everyday")[i % 4 // 2]) for i in range(1, 17, 2)]
    origin = {e.answer: e.source for e in harmful + benign}

    def benign_sources(same_source: bool) -> set[str]:
        rows = spliced_examples(hosts + harmful + benign, 1.0, seed=0, same_source=same_source)
        inserted = [next(p for p in row.answer.split("\n\n") if p in origin) for row in rows if not row.harmful]
        return {origin[p] for p in inserted}

    assert benign_sources(same_source=False) == {"sensitive", "everyday"}
    assert benign_sources(same_source=True) == {"sensitive"}


def test_same_source_falls_back_to_every_benign_passage(examples: list[LabelledPair]):
    """A harmful passage's source without benign passages: the benign row is drawn as without the option."""
    harmful_only = [replace(e, source="harm-only") if e.harmful else e for e in examples]
    spliced = spliced_examples(harmful_only, 0.5, seed=2, same_source=True)
    assert sum(not row.harmful for row in spliced) == 5
