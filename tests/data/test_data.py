"""Reading labelled data and preference pairs in every supported shape, with the label direction right."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from protector_models import InvalidInputError
from protector_models.data.labelled import read_labelled, read_preferences
from protector_models.training.detector import ranking_loss


def write(path: Path, *rows: dict) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_our_schema(tmp_path: Path):
    (pair,) = read_labelled(
        write(
            tmp_path / "ours.jsonl", {"question": "q", "answer": "a", "harmful": True, "source": "s", "category": "c"}
        )
    )
    assert (pair.question, pair.answer, pair.harmful, pair.source, pair.category) == ("q", "a", True, "s", "c")


def test_pku_rows_give_two_pairs_and_is_safe_means_not_harmful(tmp_path: Path):
    row = {
        "prompt": "p",
        "response_0": "unsafe answer",
        "response_1": "safe answer",
        "is_response_0_safe": False,
        "is_response_1_safe": True,
        "safer_response_id": 1,
    }
    first, second = read_labelled(write(tmp_path / "pku.jsonl", row))
    assert (first.answer, first.harmful) == ("unsafe answer", True)
    assert (second.answer, second.harmful) == ("safe answer", False)
    assert first.question == second.question == "p"
    assert first.source == "pku-saferlhf"


def test_beavertails_rows_invert_is_safe_and_keep_the_first_flagged_category(tmp_path: Path):
    rows = [
        {"prompt": "p", "response": "r1", "is_safe": False, "category": {"animal_abuse": False, "violence": True}},
        {"prompt": "p", "response": "r2", "is_safe": True, "category": {"violence": False}},
    ]
    harmful, benign = read_labelled(write(tmp_path / "bt.jsonl", *rows))
    assert (harmful.harmful, harmful.category, harmful.source) == (True, "violence", "beavertails")
    assert (benign.harmful, benign.category) == (False, None)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"question": "q", "answer": "a", "harmful": "yes"}, "line 1: `harmful` must be true or false, got 'yes'"),
        ({"prompt": "p", "response": "r", "is_safe": 1}, "line 1: `is_safe` must be true or false"),
        ({"text": "t"}, "line 1: unknown row shape"),
        ({"question": "q", "answer": 7, "harmful": True}, "line 1: `answer` must be text, got int"),
    ],
)
def test_bad_labelled_rows_name_the_line(tmp_path: Path, row: dict, message: str):
    with pytest.raises(InvalidInputError, match=message):
        read_labelled(write(tmp_path / "bad.jsonl", row))


def test_preferences_from_pku_triples_and_transcripts(tmp_path: Path):
    rows = [
        {"prompt": "p", "response_0": "a0", "response_1": "a1", "safer_response_id": 0},
        {"question": "q", "harmful_answer": "bad", "harmless_answer": "good"},
        {
            "chosen": "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: how?\n\nAssistant: kindly",
            "rejected": "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: how?\n\nAssistant: cruelly",
        },
    ]
    pku, triple, transcript = read_preferences(write(tmp_path / "prefs.jsonl", *rows))
    assert (pku.better, pku.worse) == ("a0", "a1")
    assert (triple.question, triple.better, triple.worse) == ("q", "good", "bad")
    assert (transcript.better, transcript.worse) == ("kindly", "cruelly")
    assert transcript.question == "Human: hi\n\nAssistant: hello\n\nHuman: how?"


def test_bad_preference_rows(tmp_path: Path):
    with pytest.raises(InvalidInputError, match="safer_response_id` must be 0 or 1, got 2"):
        read_preferences(
            write(tmp_path / "p.jsonl", {"prompt": "p", "response_0": "a", "response_1": "b", "safer_response_id": 2})
        )
    with pytest.raises(InvalidInputError, match="not a preference row"):
        read_preferences(write(tmp_path / "q.jsonl", {"question": "q", "answer": "a"}))


def test_ranking_loss_rewards_the_worse_answer_scoring_higher():
    worse, better = torch.tensor([3.0, 2.0]), torch.tensor([-1.0, 0.0])
    right_order = ranking_loss(worse, better)
    assert right_order < ranking_loss(better, worse)
    assert right_order.item() == pytest.approx(-torch.nn.functional.logsigmoid(torch.tensor([4.0, 2.0])).mean().item())
    assert ranking_loss(torch.zeros(3), torch.zeros(3)).item() == pytest.approx(0.6931, abs=1e-4)


def test_a_label_given_twice_is_an_error_not_the_last_one(tmp_path: Path):
    path = tmp_path / "d.jsonl"
    path.write_text(
        '{"question": "q", "answer": "a", "harmful": true}\n{"answer": "a", "harmful": true, "harmful": false}\n'
    )
    with pytest.raises(InvalidInputError, match=r"d\.jsonl line 2: key 'harmful' appears twice in one object"):
        read_labelled(path)


def test_an_integer_too_long_to_read_is_an_error_with_its_line(tmp_path: Path):
    path = tmp_path / "d.jsonl"
    path.write_text(
        '{"question": "q", "answer": "a", "harmful": true}\n{"answer": "a", "harmful": true, "n": ' + "9" * 5000 + "}\n"
    )
    with pytest.raises(InvalidInputError, match=r"d\.jsonl line 2: holds an integer of more than 4300 digits"):
        read_labelled(path)


def test_a_lone_surrogate_escape_is_an_error_with_its_line(tmp_path: Path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"question": "q", "answer": "a", "harmful": true}\n{"answer": "a\\ud800", "harmful": true}\n')
    with pytest.raises(InvalidInputError, match=r"d\.jsonl line 2: `answer` is not valid text: it holds a lone"):
        read_labelled(path)
