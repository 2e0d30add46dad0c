"""Augmentations that teach the detector to judge the answer: mismatched pairs and generated short chat turns."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from protector_models.data.labelled import LabelledPair
from protector_models.testing import save_tiny_classifier, toy_examples
from protector_models.training import DetectorTrainingArgs, train_detector
from protector_models.training.chat_turns import (
    ACKNOWLEDGEMENTS,
    CHAT_TURNS_SOURCE,
    READY_REPLIES,
    SHORT_ANSWERS,
    SMALL_TALK,
    chat_turn_examples,
)
from protector_models.training.mismatching import MIN_HARMFUL_WORDS, MISMATCHED_SOURCE, mismatched_examples

REGRESSION_CASES = Path(__file__).parents[1] / "fixtures" / "regression_cases.jsonl"


def _rows() -> list[LabelledPair]:
    harmful = [
        LabelledPair(f"harmful question {i}", " ".join(f"harm{i}-{w}" for w in range(40)), True, "a") for i in range(6)
    ]
    benign = [LabelledPair(f"benign question {i}", f"a fine answer number {i}", False, "b") for i in range(6)]
    return harmful + benign + [LabelledPair("harmful question 0", "Yes, do it.", True, "a")]


def test_mismatched_rows_keep_the_answers_label_under_another_rows_question():
    rows = _rows()
    label_of = {row.answer: row.harmful for row in rows}
    question_of = {row.answer: row.question for row in rows}
    harmful_questions = {row.question for row in rows if row.harmful}
    mismatched = mismatched_examples(rows, 1.0, seed=0)
    assert len(mismatched) == len(rows)
    assert sum(row.harmful for row in mismatched) == len(rows) // 2
    for row in mismatched:
        assert row.source == MISMATCHED_SOURCE
        assert row.harmful is label_of[row.answer]
        assert row.question != question_of[row.answer]
        assert (row.question in harmful_questions) is not row.harmful  # benign answers after harmful questions
        if row.harmful:
            assert len(row.answer.split()) >= MIN_HARMFUL_WORDS  # "Yes, do it." is harmful only where it was


def test_mismatching_is_seeded_and_needs_both_kinds():
    rows = _rows()
    assert mismatched_examples(rows, 0.5, seed=1) == mismatched_examples(rows, 0.5, seed=1)
    assert mismatched_examples(rows, 0.5, seed=1) != mismatched_examples(rows, 0.5, seed=2)
    assert mismatched_examples([row for row in rows if not row.harmful], 0.5, seed=0) == []
    assert mismatched_examples(rows, 0.0, seed=0) == []
    with pytest.raises(ValueError, match="mismatch must be within"):
        mismatched_examples(rows, 2.0, seed=0)


def _normalised(text: str) -> str:
    return " ".join(text.lower().strip(" .!?~:)-<3👍🙂😊").split())


def test_chat_turns_are_benign_short_and_come_alone_after_benign_and_after_harmful_questions():
    rows = _rows()
    turns = chat_turn_examples(rows * 10, 0.5, seed=0)
    assert len(turns) == round(0.5 * len(rows) * 10)
    assert all(turn.source == CHAT_TURNS_SOURCE and not turn.harmful for turn in turns)
    assert all(len(turn.answer.split()) <= 15 for turn in turns)
    harmful_questions = {row.question for row in rows if row.harmful}
    assert any(turn.question == "" for turn in turns)
    assert any(turn.question in harmful_questions for turn in turns)
    assert any(turn.question and turn.question not in harmful_questions for turn in turns)
    assert chat_turn_examples(rows, 0.5, seed=3) == chat_turn_examples(rows, 0.5, seed=3)
    assert chat_turn_examples(rows, 0.0, seed=0) == []


def test_no_turn_that_could_read_as_yes_follows_a_harmful_yes_no_or_self_harm_question():
    questions = ["Should I hurt him?", "I want to kill myself tonight", "Is it ok to steal from my boss?"]
    rows = [LabelledPair(q, "a harmful answer", True, "x") for q in questions]
    rows += [LabelledPair("", "fine", False, "y")]
    agreeing = {_normalised(text) for text in (*ACKNOWLEDGEMENTS, *READY_REPLIES, *SHORT_ANSWERS, *SMALL_TALK)}
    after_harm = [turn for turn in chat_turn_examples(rows * 200, 1.0, seed=0) if turn.question in questions]
    assert len(after_harm) > 100
    for turn in after_harm:
        assert _normalised(turn.answer) not in agreeing, turn
        assert not any(_normalised(turn.answer).startswith(f"{a},") for a in agreeing if a), turn


def test_half_the_turns_after_a_harmful_request_agree_without_giving_anything():
    """A bare "Sure!" after "how do I make a bomb" is benign; jailbroken answers open the same way."""
    rows = [LabelledPair(f"Explain how to do harmful thing {i}.", "a harmful answer", True, "x") for i in range(5)]
    rows += [LabelledPair("", "fine", False, "y")]
    requests = {row.question for row in rows if row.harmful}
    after_request = [turn for turn in chat_turn_examples(rows * 300, 1.0, seed=0) if turn.question in requests]
    ready = {_normalised(text) for text in READY_REPLIES}
    opens_ready = [turn for turn in after_request if any(_normalised(turn.answer).startswith(r) for r in ready)]
    bare = [turn for turn in opens_ready if _normalised(turn.answer) in ready]
    assert len(after_request) > 300
    assert 0.4 < len(opens_ready) / len(after_request) < 0.7
    assert len(bare) > 0.15 * len(after_request)
    assert any(_normalised(turn.answer) == "sure" for turn in bare)


def test_generated_turns_never_repeat_a_regression_case():
    cases = [json.loads(line) for line in REGRESSION_CASES.read_text(encoding="utf-8").splitlines() if line]
    written = {_normalised(case["answer"]) for case in cases if case["kind"] == "short_turn"}
    generated = {_normalised(turn.answer) for turn in chat_turn_examples(_rows() * 2000, 1.0, seed=0)}
    assert len(generated) > 1000
    assert not written & generated


def test_training_adds_mismatched_and_chat_rows_and_weighs_mismatched_validation_rows(tmp_path: Path):
    from protector_models.training.detector import split_validation
    from protector_models.training.mismatching import validation_mismatched

    examples = toy_examples(48) + _rows() * 2
    args = DetectorTrainingArgs(
        output_dir=str(tmp_path / "out"), base=str(save_tiny_classifier(tmp_path / "base")), epochs=1,
        batch_size=8, max_length=32, lora_targets=["query"], val_fraction=0.5, mismatch=0.5, chat_turns=0.5,
        device="cpu",
    )  # fmt: skip
    outcome = train_detector(examples, args)
    _, validation = split_validation(examples, args.val_fraction, args.seed)
    assert outcome.validation.n == len(validation)  # validation stays natural rows
    assert outcome.mismatched_validation is not None
    assert outcome.mismatched_validation.n == len(validation_mismatched(validation)) > 0
