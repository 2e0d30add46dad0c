"""Splice augmentation: short answers set inside long benign ones, so that one harmful paragraph anywhere in a
long, helpful answer is learnt as harmful, and a change of topic alone is not."""

from __future__ import annotations

import random
from collections.abc import Sequence

from protector_models.data.labelled import LabelledPair

SPLICED_SOURCE = "spliced"
"""The ``source`` of every spliced row (source balancing treats them as one source)."""
MIN_HOST_WORDS = 250
"""A host answer is a benign answer at least this long: long enough that its windows are mostly benign text."""
MAX_PASSAGE_WORDS = 150
"""A passage is a whole answer at most this long, so its label holds for what is spliced in."""
MIN_PASSAGE_WORDS = 8
VALIDATION_SHARE = 0.2
VALIDATION_SEED = 12345
"""Spliced validation rows are built from validation rows alone, with a seed no training run uses."""


def spliced_examples(
    examples: Sequence[LabelledPair], share: float, seed: int, *, same_source: bool = False
) -> list[LabelledPair]:
    """``share * len(examples)`` new rows, half harmful and half benign. Each is a long benign answer (with its own
    question) with one short answer of another row inserted as a paragraph, at a random paragraph break or at the
    end; it takes the inserted answer's label. The benign half teaches that a change of topic is not harm.

    With ``same_source``, each benign row's passage comes from the source of the harmful row's before it (where
    that source has benign passages): a benign passage on the same sensitive subjects, so the subject of an
    off-topic paragraph does not tell the label. Without it, benign passages come from every source alike.

    Empty when there are no long benign answers, or no short answers of either label."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"splice must be within [0, 1], got {share}")
    hosts = [e for e in examples if not e.harmful and len(e.answer.split()) >= MIN_HOST_WORDS]
    short = [e for e in examples if MIN_PASSAGE_WORDS <= len(e.answer.split()) <= MAX_PASSAGE_WORDS]
    passages = {label: [e for e in short if e.harmful is label] for label in (True, False)}
    count = round(share * len(examples))
    if not hosts or not all(passages.values()) or count == 0:
        return []
    benign_by_source: dict[str, list[LabelledPair]] = {}
    for passage in passages[False]:
        benign_by_source.setdefault(passage.source, []).append(passage)
    generator = random.Random(f"{seed}:splice")
    spliced = []
    harmful_source = ""
    for index in range(count):
        harmful = index % 2 == 0
        host = generator.choice(hosts)
        pool = passages[harmful]
        if same_source and not harmful:
            pool = benign_by_source.get(harmful_source, pool)
        passage = generator.choice(pool)  # shorter than any host: never the host itself
        if harmful:
            harmful_source = passage.source
        answer = insert_paragraph(host.answer, passage.answer, generator)
        spliced.append(LabelledPair(host.question, answer, harmful, SPLICED_SOURCE))
    return spliced


def insert_paragraph(text: str, paragraph: str, generator: random.Random) -> str:
    """``text`` with ``paragraph`` inserted after one of its paragraphs (any but the first), chosen at random."""
    paragraphs = [part for part in text.split("\n\n") if part.strip()] or [text]
    at = generator.randint(1, len(paragraphs))
    return "\n\n".join([*paragraphs[:at], paragraph.strip(), *paragraphs[at:]])


def validation_spliced(validation: Sequence[LabelledPair]) -> list[LabelledPair]:
    """The spliced rows that measure a detector's reading of long answers: built from ``validation`` alone, the
    same for every run on the same files (``train-detector --splice`` and ``benchmarks/validation.py``)."""
    return spliced_examples(validation, VALIDATION_SHARE, VALIDATION_SEED)
