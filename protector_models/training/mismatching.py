"""Mismatched pairs: answers shown after the question of an unrelated row, keeping the answer's own label, so that
the detector judges the answer and not the question (a harmful question before a benign answer is benign)."""

from __future__ import annotations

import random
from collections.abc import Sequence

from protector_models.data.labelled import LabelledPair

MISMATCHED_SOURCE = "mismatched"
"""The ``source`` of every mismatched row (source balancing treats them as one source)."""
MIN_HARMFUL_WORDS = 30
"""A harmful answer moved under another question is at least this long: a short one ("Yes, do it.") may be
harmful only as a reply to its own question."""
VALIDATION_SHARE = 0.2
VALIDATION_SEED = 54321
"""Mismatched validation rows are built from validation rows alone, with a seed no training run uses."""


def mismatched_examples(examples: Sequence[LabelledPair], share: float, seed: int) -> list[LabelledPair]:
    """``share * len(examples)`` new rows, alternately: the question of a harmful row before the benign answer of a
    row with another question (labelled benign), and the question of a benign row before a harmful answer of a
    row with another question (labelled harmful). Empty when either kind cannot be built."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"mismatch must be within [0, 1], got {share}")
    asked = [e for e in examples if e.question.strip()]
    harmful_questions = [e.question for e in asked if e.harmful]
    benign_questions = [e.question for e in asked if not e.harmful]
    benign_answers = [e for e in examples if not e.harmful]
    harmful_answers = [e for e in examples if e.harmful and len(e.answer.split()) >= MIN_HARMFUL_WORDS]
    count = round(share * len(examples))
    if not (harmful_questions and benign_questions and benign_answers and harmful_answers) or count == 0:
        return []
    generator = random.Random(f"{seed}:mismatch")
    rows = []
    for index in range(count):
        harmful = index % 2 == 1
        questions, answers = (benign_questions, harmful_answers) if harmful else (harmful_questions, benign_answers)
        row = generator.choice(answers)
        question = generator.choice(questions)
        for _ in range(8):  # another row's question; with one question in the data, rows are skipped
            if question != row.question:
                break
            question = generator.choice(questions)
        else:
            continue
        rows.append(LabelledPair(question, row.answer, harmful, MISMATCHED_SOURCE))
    return rows


def validation_mismatched(validation: Sequence[LabelledPair]) -> list[LabelledPair]:
    """The mismatched rows that measure whether a detector judges the answer: built from ``validation`` alone, the
    same for every run on the same files (``train-detector --mismatch`` and ``benchmarks/validation.py``)."""
    return mismatched_examples(validation, VALIDATION_SHARE, VALIDATION_SEED)
