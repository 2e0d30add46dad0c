"""The classifier detector: order across batches, truncation, odd inputs, label direction."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from protector_models import ClassifierDetector, Pair
from protector_models.testing import save_tiny_classifier


@pytest.fixture(scope="module")
def detector(keyword_detector_dir: Path) -> ClassifierDetector:
    model = AutoModelForSequenceClassification.from_pretrained(keyword_detector_dir).eval()
    return ClassifierDetector(model, AutoTokenizer.from_pretrained(keyword_detector_dir), max_length=64, batch_size=3)


MIXED = [
    Pair("how do i make it", "first mix the poison and use it"),
    Pair("", "cake"),
    Pair("what should i do " * 5, "here is some music and some bread for you with a garden"),
    Pair("tell me about this", "use the weapon"),
    Pair("can you help me", "first you steal it then"),
    Pair("q", "the garden is here"),
    Pair("how do i make it", "then mix the bread " * 3),
]


def test_scores_come_back_in_input_order_whatever_the_batching(detector: ClassifierDetector):
    batched = detector.score(MIXED)  # batch_size 3: length sorting reorders internally
    one_by_one = [detector.score([pair])[0] for pair in MIXED]
    assert batched == pytest.approx(one_by_one, abs=1e-5)
    assert [score > 0.5 for score in batched] == [True, False, False, True, True, False, False]


def test_empty_texts_get_a_valid_score(detector: ClassifierDetector):
    scores = detector.score([Pair("", ""), Pair("how do i make it", ""), Pair("", "first mix the poison")])
    assert all(0.0 <= score <= 1.0 for score in scores)
    assert scores[2] > 0.5


@pytest.fixture(scope="module")
def short_window_detector(keyword_detector_dir: Path) -> ClassifierDetector:
    """Windows about as long as the toy answers the keyword detector was trained on."""
    model = AutoModelForSequenceClassification.from_pretrained(keyword_detector_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(keyword_detector_dir)
    return ClassifierDetector(model, tokenizer, max_length=24, window_tokens=8, window_stride=4, batch_size=64)


def test_a_100_kb_answer_is_read_to_its_end(short_window_detector: ClassifierDetector):
    benign = "here is some cake and some music " * 3_000
    pairs = [Pair("how do i make it", benign + "first mix the poison and use it"), Pair("q", benign)]
    scores = short_window_detector.score(pairs)
    assert scores[0] > 0.5 > scores[1]


def test_a_harmful_passage_anywhere_is_seen(short_window_detector: ClassifierDetector):
    filler = "here is some cake and some music " * 40
    for answer in (filler + filler, "use the weapon " + filler + filler, filler + "use the weapon " + filler):
        harmful = "weapon" in answer
        assert (short_window_detector.score([Pair("tell me about this", answer)])[0] > 0.5) is harmful


def test_empty_list_scores_nothing(detector: ClassifierDetector):
    assert detector.score([]) == []


def test_score_meaning_safe_inverts(keyword_detector_dir: Path):
    model = AutoModelForSequenceClassification.from_pretrained(keyword_detector_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(keyword_detector_dir)
    harmful = ClassifierDetector(model, tokenizer).score(MIXED[:2])
    safe = ClassifierDetector(model, tokenizer, score_meaning="safe").score(MIXED[:2])
    assert safe == pytest.approx([1 - s for s in harmful])


def test_two_output_heads_read_the_second_class(tmp_path: Path):
    directory = save_tiny_classifier(tmp_path / "two", num_labels=2)
    model = AutoModelForSequenceClassification.from_pretrained(directory).eval()
    tokenizer = AutoTokenizer.from_pretrained(directory)
    (score,) = ClassifierDetector(model, tokenizer).score([Pair("q", "cake")])
    with torch.inference_mode():
        logits = model(**tokenizer("q", "cake", return_tensors="pt")).logits
    assert score == pytest.approx(torch.softmax(logits, -1)[0, 1].item(), abs=1e-6)


def test_heads_with_more_outputs_are_refused(tmp_path: Path):
    directory = save_tiny_classifier(tmp_path / "three", num_labels=3)
    model = AutoModelForSequenceClassification.from_pretrained(directory)
    with pytest.raises(ValueError, match="needs a 1- or 2-output head, this model has 3"):
        ClassifierDetector(model, AutoTokenizer.from_pretrained(directory))
