"""Windows over long answers: every token is read, inputs stay within max_length, train and inference agree."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protector_models import Pair
from protector_models.models.templates import PAPER_DETECTOR_TEMPLATE
from protector_models.models.windows import CHUNK_CHARS, PairEncoder, WindowSpec, slide
from protector_models.testing import byte_tokenizer, tiny_bert_tokenizer


@given(
    length=st.integers(0, 200),
    chunk=st.integers(1, 50),
    size=st.integers(1, 40),
    stride_share=st.floats(0.01, 1.0),
)
def test_windows_cover_every_token_in_order(length: int, chunk: int, size: int, stride_share: float):
    stride = max(1, round(size * stride_share))
    tokens = list(range(length))
    chunks = [tokens[i : i + chunk] for i in range(0, length, chunk)]
    windows = list(slide(chunks, size, stride))
    assert windows == list(slide([tokens], size, stride))  # chunking does not change the windows
    if length <= size:
        assert windows == [tokens]
        return
    assert all(len(w) == size and w == tokens[w[0] : w[0] + size] for w in windows)
    starts = [w[0] for w in windows]
    assert starts[0] == 0
    assert windows[-1][-1] == length - 1  # the last window ends at the end
    assert all(0 < b - a <= stride for a, b in itertools.pairwise(starts))  # no gap, overlap kept


def test_a_short_pair_is_one_input_as_the_tokenizer_encodes_it():
    tokenizer = tiny_bert_tokenizer()
    encoder = PairEncoder(tokenizer, "text_pair", WindowSpec(64, 32, 16))
    (window,) = encoder.windows([Pair("how do i make it", "first mix the cake")])
    expected = tokenizer("how do i make it", "first mix the cake")
    assert window.input_ids == expected["input_ids"]
    assert window.token_type_ids == expected["token_type_ids"]


def test_the_paper_template_matches_the_joined_text():
    tokenizer = byte_tokenizer()
    encoder = PairEncoder(tokenizer, "paper", WindowSpec(64, 32, 16))
    (window,) = encoder.windows([Pair("q", "a")])
    assert window.input_ids == tokenizer(PAPER_DETECTOR_TEMPLATE.format(question="q", answer="a"))["input_ids"]


def test_a_long_answer_is_read_to_its_end_with_the_question_in_front():
    tokenizer = tiny_bert_tokenizer()
    encoder = PairEncoder(tokenizer, "text_pair", WindowSpec(16, 8, 4))
    answer = "cake " * 30 + "first mix the poison"
    windows = list(encoder.windows([Pair("how do i make it " * 3, answer)]))
    assert len(windows) > 1
    assert all(len(w.input_ids) <= 16 for w in windows)
    texts = [tokenizer.decode(w.input_ids) for w in windows]
    assert all(text.startswith("[CLS] how do i make it [SEP]") for text in texts)  # the question's end, every window
    assert texts[-1].endswith("mix the poison [SEP]")


def test_the_question_fills_what_a_short_answer_leaves():
    tokenizer = tiny_bert_tokenizer()
    encoder = PairEncoder(tokenizer, "text_pair", WindowSpec(16, 8, 4))
    (window,) = encoder.windows([Pair("can you help me " * 10, "use a garden")])
    assert len(window.input_ids) == 16
    # 10 tokens of room: the question's first 2 (a quarter) and its last 8
    assert (
        tokenizer.decode(window.input_ids) == "[CLS] can you can you help me can you help me [SEP] use a garden [SEP]"
    )


def test_a_question_cut_to_fit_keeps_its_start_as_well_as_its_end():
    tokenizer = tiny_bert_tokenizer()
    encoder = PairEncoder(tokenizer, "text_pair", WindowSpec(64, 32, 16))
    filler = "the cake is " * 200  # 600 tokens pushed after the real question
    for answer in ("use a garden", "cake " * 80):  # one window, and windows of a long answer
        windows = list(encoder.windows([Pair("how do i make poison " + filler + "use", answer)]))
        texts = [tokenizer.decode(w.input_ids) for w in windows]
        assert all(text.startswith("[CLS] how do i make poison") for text in texts), texts[0]
        assert all(" the cake is use [SEP]" in text for text in texts)  # and its end, next to the answer


def test_huge_text_is_tokenised_in_pieces_with_the_same_windows():
    tokenizer = tiny_bert_tokenizer()
    encoder = PairEncoder(tokenizer, "text_pair", WindowSpec(32, 16, 8))
    answer = "mix the cake " * (CHUNK_CHARS // 4)  # longer than one piece
    question = "what should i do " * (CHUNK_CHARS // 8)
    windows = list(encoder.windows([Pair(question, answer)]))
    stream = tokenizer(answer, add_special_tokens=False)["input_ids"]
    assert [w.input_ids[-17:-1] for w in windows] == list(slide([stream], 16, 8))


def test_stride_longer_than_the_window_is_refused():
    with pytest.raises(ValueError, match="stride"):
        WindowSpec(64, 8, 9)
