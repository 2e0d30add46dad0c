"""A streamed answer is cut into check's own windows as it arrives, whatever the chunking, and each window says
exactly where the text it vouches for ends."""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protector_models import Pair
from protector_models.models.window_stream import UNBROKEN_CHARS, WindowStream
from protector_models.models.windows import PairEncoder, WindowSpec
from protector_models.testing import BENIGN_WORDS, HARMFUL_WORDS, QUESTIONS, byte_tokenizer, tiny_bert_tokenizer

WORDS = [*HARMFUL_WORDS, *BENIGN_WORDS, *" ".join(QUESTIONS).split(), "cakes", "xylophone", "don't", "it's"]
GAPS = [" ", " ", " ", "  ", "\n", "\n\n", "\t", " \u00a0", "\r\n"]
MARKS = ["", "", "", ",", ".", "!", "?", "...", ":", "\U0001f35e", "\u200b", "\u00e9", "\u4e2d\u6587", "'", "-"]
ENCODERS = {
    "wordpiece": PairEncoder(tiny_bert_tokenizer(), "text_pair", WindowSpec(40, 12, 8)),
    "byte-level, paper template": PairEncoder(byte_tokenizer(), "paper", WindowSpec(48, 16, 10)),
}

answers = st.lists(
    st.tuples(st.sampled_from(GAPS), st.sampled_from(WORDS), st.sampled_from(MARKS)), min_size=0, max_size=60
).map(lambda parts: "".join(gap + word + mark for gap, word, mark in parts).lstrip(" "))


def chunked(text: str, cuts: list[int]) -> list[str]:
    """``text`` cut at the given positions (any, inside words and characters' neighbours alike)."""
    points = sorted({0, len(text), *(cut % (len(text) + 1) for cut in cuts)})
    return [text[a:b] for a, b in itertools.pairwise(points)]


def reference(encoder: PairEncoder, text: str) -> tuple[list[int], list[tuple[int, int]]]:
    """The whole answer's tokens and their character spans, as check tokenises it."""
    lead = encoder.answer_lead
    encoded = encoder.tokenizer(lead + text, add_special_tokens=False, return_offsets_mapping=True)
    spans = [(max(0, a - len(lead)), b - len(lead)) for a, b in encoded["offset_mapping"]]
    return list(encoded["input_ids"]), spans


@pytest.mark.parametrize("name", list(ENCODERS))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(answer=answers, cuts=st.lists(st.integers(0, 10_000), max_size=40), first=st.sampled_from([0, 1, 5, 11]))
def test_windows_cut_as_text_arrives_are_checks_windows_in_order(name: str, answer: str, cuts: list[int], first: int):
    encoder = ENCODERS[name]
    question = "how do i make it"
    stream = WindowStream(encoder, question, first_window_tokens=first)
    cut = [window for piece in chunked(answer, cuts) for window in stream.feed(piece)]
    final = stream.finish()

    checks = list(encoder.windows([Pair(question, answer)]))
    assert [w.window.input_ids for w in final] == [w.input_ids for w in checks]  # finish: check's own windows
    full = [w for w in cut if w.checks]
    assert [w.window.input_ids for w in full] == [w.input_ids for w in checks[: len(full)]]  # a prefix, in order

    ids, spans = reference(encoder, answer)
    breaks = [match.start() for match in re.finditer(r"\s+(?=\S)", answer) if match.start() > 0]
    final_tokens = sum(end <= breaks[-1] for _, end in spans) if breaks else 0
    assert stream.tokens == final_tokens  # every token before the last word break is final, and no other
    early = [w for w in cut if not w.checks]
    if first and final_tokens > first:  # the short first window: the first tokens, read as an answer that long
        (window,) = early
        expected = encoder.window(encoder.question_ids(question), ids[:first], whole=True)
        assert window.window.input_ids == expected.input_ids
        assert window.text_end == min(spans[first - 1][1], spans[first][0])
    else:
        assert not early
    for k, window in enumerate(full):  # window k vouches for the text of its first `stride` tokens and before
        end = (k + 1) * encoder.stride
        assert window.text_end == min(spans[end - 1][1], spans[end][0])
    assert all(w.text_end <= len(answer) for w in cut)


def test_a_window_is_cut_as_soon_as_the_word_after_it_begins():
    encoder = PairEncoder(tiny_bert_tokenizer(), "text_pair", WindowSpec(40, 4, 4))
    stream = WindowStream(encoder, "", first_window_tokens=0)
    assert stream.feed("the cake is here") == []  # "here" may go on ("heres"): 3 final tokens
    assert stream.feed(" a") == []  # now "here" is final (4 tokens) but where its text ends needs the next token
    (window,) = stream.feed(" b")  # "a" is final: the window over "the cake is here" is complete
    assert encoder.tokenizer.decode(window.window.input_ids) == "[CLS] [SEP] the cake is here [SEP]"
    assert "the cake is here a b"[: window.text_end] == "the cake is here"


def test_text_without_spaces_is_cut_before_its_last_tokens():
    """A long run with no whitespace (here Chinese, a token per character) does not wait for the end."""
    encoder = PairEncoder(tiny_bert_tokenizer(), "text_pair", WindowSpec(40, 8, 8))
    stream = WindowStream(encoder, "", first_window_tokens=0)
    text = "\u4e2d" * (UNBROKEN_CHARS + 20)
    windows = [window for char in text for window in stream.feed(char)]
    assert len(windows) > 20  # cut as it came, not only at the end
    assert [w.window.input_ids for w in windows] == [
        w.input_ids for w in list(encoder.windows([Pair("", text)]))[: len(windows)]
    ]
