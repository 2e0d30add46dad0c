"""Generated threats, self-harm encouragement and doxxing answers, each genre beside benign answers to its requests."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from protector_models.testing import toy_examples
from protector_models.training.written_harms import GENRES, NAMES, WRITTEN_HARMS_SOURCE, written_harm_examples

REGRESSION_CASES = Path(__file__).parents[1] / "fixtures" / "regression_cases.jsonl"


def _genre_of(answer: str) -> int:
    """The index of the one genre whose sentences make up ``answer``."""
    owners = {i for i, genre in enumerate(GENRES) if any(_in(s, answer) for s in (*genre.harmful, *genre.benign))}
    assert len(owners) == 1, (answer, owners)
    return owners.pop()


def _filled(sentence: str) -> set[str]:
    return {sentence.format(name=name) for name in NAMES}


def _in(sentence: str, answer: str) -> bool:
    return any(filled in answer for filled in _filled(sentence))


def test_half_the_rows_are_harmful_and_every_genre_has_both_labels_under_the_same_requests():
    rows = written_harm_examples(toy_examples(600), 1.0, seed=0)
    assert len(rows) == 600
    assert {row.source for row in rows} == {WRITTEN_HARMS_SOURCE}
    assert sum(row.harmful for row in rows) == 300
    per_genre = Counter((_genre_of(row.answer), row.harmful) for row in rows)
    assert set(per_genre) == {(genre, label) for genre in range(len(GENRES)) for label in (True, False)}
    assert min(per_genre.values()) == 100
    for label in (True, False):  # the answer's sentences come from its own label's list
        sentences = [s for genre in GENRES for s in (genre.harmful if label else genre.benign)]
        assert all(any(_in(s, row.answer) for s in sentences) for row in rows if row.harmful is label)
    harmful_questions = {row.question for row in rows if row.harmful and row.question}
    benign_questions = {row.question for row in rows if not row.harmful and row.question}
    assert len(harmful_questions & benign_questions) > 20  # the request does not tell the label
    assert 0.1 < sum(not row.question for row in rows) / len(rows) < 0.3  # some answers alone


def test_generation_is_seeded_and_checks_its_share():
    examples = toy_examples(50)
    assert written_harm_examples(examples, 0.5, seed=1) == written_harm_examples(examples, 0.5, seed=1)
    assert written_harm_examples(examples, 0.5, seed=1) != written_harm_examples(examples, 0.5, seed=2)
    assert written_harm_examples(examples, 0.0, seed=0) == []
    with pytest.raises(ValueError, match="written_harms must be within"):
        written_harm_examples(examples, 1.5, seed=0)


def test_no_placeholder_is_left_and_no_sentence_repeats_a_regression_case():
    rows = written_harm_examples(toy_examples(900), 1.0, seed=0)
    assert not any("{" in row.answer or "{" in row.question for row in rows)
    cases = [json.loads(line) for line in REGRESSION_CASES.read_text(encoding="utf-8").splitlines() if line]

    def words(text: str) -> str:
        return " ".join(re.findall(r"[a-z0-9']+", text.lower()))

    written = [words(case["answer"]) for case in cases]
    for genre in GENRES:
        for sentence in (*genre.harmful, *genre.benign, *genre.requests):
            for filled in _filled(sentence):
                assert not any(words(filled) in answer for answer in written), filled
