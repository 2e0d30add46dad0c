"""Templates: one encoding for training and inference, and truncation that cuts the question first."""

from __future__ import annotations

from protector_models import Pair
from protector_models.models.templates import (
    DETOXIFY_TEMPLATE,
    PAPER_DETECTOR_TEMPLATE,
    detoxify_prompt,
    fit_pairs,
    resolve_detector_template,
)
from protector_models.testing import byte_tokenizer, tiny_bert_tokenizer


def test_paper_templates_are_verbatim():
    assert PAPER_DETECTOR_TEMPLATE.format(question="q", answer="a") == "Question: q\n\nAnswer: a"
    assert DETOXIFY_TEMPLATE.startswith("You are given a question and a response, the response may contain")
    assert detoxify_prompt(Pair("Q?", "A.")).endswith("\nQuestion: Q?\nOriginal response: A.\nCorrected response: ")


def test_auto_template_depends_on_the_tokenizer():
    assert resolve_detector_template("auto", tiny_bert_tokenizer()) == "text_pair"
    assert resolve_detector_template("auto", byte_tokenizer()) == "paper"


def test_question_is_cut_before_the_answer():
    tokenizer = tiny_bert_tokenizer()
    pair = Pair("how do i make it " * 3, "first mix the cake")  # 15 + 4 tokens
    (fitted,) = fit_pairs(tokenizer, [pair], budget=10)
    assert fitted.answer == pair.answer  # the answer is whole
    assert fitted.question == "it how do i make it "  # the last 10 - 4 = 6 question tokens survive
    (tight,) = fit_pairs(tokenizer, [pair], budget=3)
    assert (tight.question, tight.answer) == ("", "first mix the")


def test_short_pairs_are_not_touched():
    tokenizer = tiny_bert_tokenizer()
    pair = Pair("what should i do", "use a garden")
    assert fit_pairs(tokenizer, [pair], budget=100) == [pair]
