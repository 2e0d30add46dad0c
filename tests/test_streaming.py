"""Verified release: a streamed answer is judged on check's windows as it arrives, released as they pass, stopped
at the first flagged one, and an answer that streams to its end gets check's verdict.

The detector is the tiny keyword model (real, trained in seconds) reading windows of 24 answer tokens every 16,
with a first window of 8, so that short answers already have several windows.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protector_models import (
    ClassifierDetector,
    ConfigError,
    DetectorConfig,
    HarmfulContentError,
    InvalidInputError,
    ModelRuntimeError,
    ModelSpec,
    Pair,
    Protector,
    ProtectorConfig,
    StreamingConfig,
    VerifiedStream,
)
from protector_models.models.windows import Window
from protector_models.testing import BENIGN_WORDS, HARMFUL_WORDS, QUESTIONS

FILLER = ["the", "a", "you", "can", "with", "first", "then", "mix", "use", "it", "is", "here", "some", "and"]
GAPS = [" ", " ", " ", "\n", "  ", ", ", ". "]
VERIFIED = StreamingConfig(release="verified", first_window_tokens=8)
REFUSAL = "Withheld."


class RecordingScorer:
    """The real detector, remembering every batch of windows it scored."""

    def __init__(self, inner: ClassifierDetector, *, fail_on_call: int | None = None) -> None:
        self.inner = inner
        self.encoder = inner.encoder
        self.calls: list[list[Window]] = []
        self.scores: dict[tuple[int, ...], float] = {}
        self.fail_on_call = fail_on_call

    def score(self, pairs: Sequence[Pair]) -> list[float]:
        return self.inner.score(pairs)

    def score_windows(self, windows: Sequence[Window]) -> list[float]:
        self.calls.append(list(windows))
        if self.fail_on_call is not None and len(self.calls) >= self.fail_on_call:
            raise RuntimeError("CUDA out of memory")
        scores = self.inner.score_windows(windows)
        self.scores.update((tuple(window.input_ids), score) for window, score in zip(windows, scores, strict=True))
        return scores

    @property
    def scored(self) -> list[tuple[int, ...]]:
        return [tuple(window.input_ids) for call in self.calls for window in call]


class ModelStream:
    """A model's answer in the given pieces, pulled one at a time: counts the pieces it generated and whether its
    stream was closed (cancelled) before the end."""

    def __init__(self, pieces: Sequence[str]) -> None:
        self.pieces = list(pieces)
        self.generated = 0
        self.closed_early = False

    def __iter__(self) -> Iterator[str]:
        try:
            for piece in self.pieces:
                self.generated += 1
                yield piece
        except GeneratorExit:
            self.closed_early = True
            raise


@pytest.fixture(scope="session")
def windowed_detector(keyword_detector_dir: Path) -> ClassifierDetector:
    return ClassifierDetector.from_config(
        DetectorConfig(
            model=ModelSpec(source=str(keyword_detector_dir), max_length=64), window_tokens=24, window_stride=16
        )
    )


def guard(detector: RecordingScorer, **options) -> Protector:
    return Protector(detector=detector, refusal_text=REFUSAL, streaming=VERIFIED, **{"action": "refuse", **options})


def run(stream: VerifiedStream, pieces: Sequence[str] | ModelStream) -> str:
    """Feed the pieces until the stream ends; what it released. The model's stream is closed on a stop."""
    shown = []
    source = iter(pieces)
    for piece in source:
        shown.append(stream.feed(piece))
        if stream.done:
            getattr(source, "close", lambda: None)()
            return "".join(shown)
    return "".join(shown) + stream.finish()


def words(count: int, *, harmful_at: int | None = None, seed: int = 0) -> str:
    import random

    generator = random.Random(seed)
    chosen = [generator.choice(FILLER + list(BENIGN_WORDS)) for _ in range(count)]
    if harmful_at is not None:
        chosen[harmful_at : harmful_at + 1] = ["first", "mix", "the", "poison", "and", "use", "it"]
    return " ".join(chosen)


def pieces_of(text: str, cuts: list[int]) -> list[str]:
    points = sorted({0, len(text), *(cut % (len(text) + 1) for cut in cuts)})
    return [text[a:b] for a, b in itertools.pairwise(points)]


benign_answers = st.lists(
    st.tuples(st.sampled_from(GAPS), st.sampled_from(FILLER + list(BENIGN_WORDS))), max_size=90
).map(lambda parts: "".join(gap + word for gap, word in parts).strip())
any_answers = st.lists(
    st.tuples(st.sampled_from(GAPS), st.sampled_from(FILLER * 6 + list(BENIGN_WORDS) + list(HARMFUL_WORDS))),
    max_size=90,
).map(lambda parts: "".join(gap + word for gap, word in parts).strip())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    answer=st.one_of(benign_answers, any_answers),
    cuts=st.lists(st.integers(0, 100_000), max_size=60),
    question=st.sampled_from(["", *QUESTIONS]),
)
def test_a_streamed_answer_passes_if_and_only_if_check_passes_it(
    windowed_detector: ClassifierDetector, answer: str, cuts: list[int], question: str
):
    detector = RecordingScorer(windowed_detector)
    protector = guard(detector)
    (verdict,) = protector.check([(question, answer)])
    checks = [tuple(w.input_ids) for w in detector.encoder.windows([Pair(question, answer)])]
    stream = protector.stream(question)
    shown = run(stream, pieces_of(answer, cuts))
    outcome = stream.outcome
    assert outcome is not None
    early = set(detector.scored) - set(checks)

    if not outcome.stopped:  # streamed to its end: check's windows were all scored, and check's verdict given
        assert set(checks) <= set(detector.scored) or not answer.strip()
        assert len(early) <= 1  # at most the short first window
        assert outcome.result.flagged == verdict.flagged
        assert outcome.result.harm_score == pytest.approx(verdict.harm_score, abs=1e-5)
        assert outcome.early_windows == len(early)
    else:  # stopped by a window that check reads: check flags the answer too
        assert verdict.flagged
        assert outcome.result.flagged
        assert outcome.result.action == "refuse"
    if verdict.flagged:
        released = answer[: outcome.released]
        assert outcome.result.flagged
        assert shown.startswith(released)
        assert shown.endswith(REFUSAL)
        assert (released + shown[len(released) : -len(REFUSAL)]).endswith("\n\n") or not released
    else:  # an answer check passes streams whole, whatever its short first window scored
        assert shown == answer
        assert not outcome.stopped
    assert answer.startswith(shown[: outcome.released])
    assert outcome.shown == shown


def test_the_first_text_comes_with_the_first_window_and_the_rest_as_windows_pass(windowed_detector):
    detector = RecordingScorer(windowed_detector)
    stream = guard(detector).stream("how do i make it")
    answer = words(60)
    released = [stream.feed(word + " ") for word in answer.split(" ")]
    first = next(i for i, text in enumerate(released) if text)
    assert first == 9  # 8 words of one token each, and the 9th word begun so that the 8th is final
    assert "".join(released) == answer[: len("".join(released))]
    (window,) = detector.calls[0]  # the short first window: [CLS], the question's 5 tokens, [SEP], 8, [SEP]
    assert len(window.input_ids) == 1 + 5 + 1 + 8 + 1
    assert "".join(released) + stream.finish() == answer + " "
    assert stream.outcome is not None
    assert not stream.outcome.result.flagged


class ShortWindowAlarm(RecordingScorer):
    """The real detector, but any window of at most ``answer_tokens`` answer tokens scores 1.0: a short prefix
    without the context the rest of the answer gives, as the default sometimes misreads one."""

    def __init__(self, inner: ClassifierDetector, question: str, answer_tokens: int) -> None:
        super().__init__(inner)
        self.short = len(inner.encoder.question_ids(question)) + answer_tokens + 3  # [CLS] q [SEP] answer [SEP]

    def score_windows(self, windows: Sequence[Window]) -> list[float]:
        scores = super().score_windows(windows)
        return [1.0 if len(w.input_ids) <= self.short else s for w, s in zip(windows, scores, strict=True)]


def test_a_flagged_short_first_window_holds_its_text_until_a_full_window_decides(windowed_detector):
    question = "how do i make it"
    detector = ShortWindowAlarm(windowed_detector, question, VERIFIED.first_window_tokens)
    stream = guard(detector).stream(question)
    answer = words(60)
    released = [stream.feed(word + " ") for word in answer.split(" ")]
    assert len(detector.calls[0]) == 1  # the short first window, flagged...
    first = next(i for i, text in enumerate(released) if text)
    assert first > 9  # ...released nothing: the text waited for the first full window (24 tokens)
    assert not stream.done
    assert "".join(released) + stream.finish() == answer + " "
    assert stream.outcome is not None
    assert not stream.outcome.stopped
    assert not stream.outcome.result.flagged


def test_windows_ready_together_are_scored_in_one_call(windowed_detector):
    detector = RecordingScorer(windowed_detector)
    stream = guard(detector).stream("how do i make it")
    answer = words(100)
    assert stream.feed(answer) != ""  # every window complete but those at the end: one call
    assert len(detector.calls) == 1
    assert len(detector.calls[0]) > 3
    assert stream.feed(" and") == ""
    stream.finish()
    assert len(detector.calls) == 2  # the rest of check's windows


def test_a_harmful_paragraph_stops_the_model_within_one_stride_of_the_first_window_over_it(windowed_detector):
    """The harmful sentence starts at word (= token) 600: the model is cancelled at most one stride after the end
    of the first window that reads the whole sentence."""
    detector = RecordingScorer(windowed_detector)
    protector = guard(detector)
    answer = words(1000, harmful_at=600)
    (verdict,) = protector.check([("how do i make it", answer)])
    assert verdict.flagged  # check flags the answer

    model = ModelStream([word + " " for word in answer.split(" ")])
    shown = run(protector.stream("how do i make it"), model)
    size, stride = detector.encoder.answer_tokens, detector.encoder.stride
    covering_end = next(start + size for start in range(0, 1000, stride) if start + size >= 600 + 7)
    assert model.closed_early
    assert model.generated <= covering_end + stride
    assert shown.endswith(REFUSAL)
    assert "poison" not in shown


def test_action_raise_ends_the_stream_with_the_error_and_records_what_was_released(windowed_detector):
    detector = RecordingScorer(windowed_detector)
    stream = guard(detector, action="raise").stream("how do i make it")
    answer = words(80, harmful_at=50)
    shown: list[str] = []

    def feed_all() -> None:
        for word in answer.split(" "):
            shown.append(stream.feed(word + " "))

    with pytest.raises(HarmfulContentError) as raised:
        feed_all()
    assert stream.done
    assert stream.outcome is not None
    assert stream.outcome.released == len("".join(shown)) > 0
    assert raised.value.results[0].flagged
    assert "poison" not in "".join(shown)


def test_detoxify_rewrites_the_answer_so_far(windowed_detector):
    class EchoRewriter:
        """Rewrites by a fixed rule so the test can tell what it was given (a stand-in for a detoxifier model)."""

        def __init__(self) -> None:
            self.pairs: list[Pair] = []

        def rewrite(self, pairs: Sequence[Pair]) -> list[str]:
            self.pairs += pairs
            return [f"a safe answer of {len(pair.answer.split())} words" for pair in pairs]

    rewriter = EchoRewriter()
    protector = Protector(
        detector=RecordingScorer(windowed_detector), rewriter=rewriter, streaming=VERIFIED, rescore_rewrites=False
    )
    stream = protector.stream("how do i make it")
    answer = words(80, harmful_at=50)
    shown = run(stream, [word + " " for word in answer.split(" ")])
    (pair,) = rewriter.pairs
    assert answer.startswith(pair.answer.rstrip())
    assert "poison" in pair.answer
    assert len(pair.answer) < len(answer)
    assert shown.endswith(f"\n\na safe answer of {len(pair.answer.split())} words")
    assert stream.outcome is not None
    assert stream.outcome.result.action == "detoxify"


def test_action_pass_streams_everything_and_reports_checks_verdict(windowed_detector):
    detector = RecordingScorer(windowed_detector)
    protector = guard(detector, action="pass")
    answer = words(80, harmful_at=50)
    stream = protector.stream("")
    assert run(stream, [word + " " for word in answer.split(" ")]) == answer + " "
    (verdict,) = protector.check([("", answer + " ")])
    assert stream.outcome is not None
    assert not stream.outcome.stopped
    assert (stream.outcome.result.flagged, stream.outcome.result.action) == (True, "annotate")
    assert stream.outcome.result.harm_score == pytest.approx(verdict.harm_score, abs=1e-5)


@pytest.mark.parametrize("on_error", ["raise", "block", "pass"])
def test_a_model_failure_mid_stream_follows_on_error(windowed_detector, on_error: str):
    detector = RecordingScorer(windowed_detector, fail_on_call=2)
    stream = guard(detector, on_error=on_error).stream("")
    answer = words(80)
    pieces = [word + " " for word in answer.split(" ")]
    if on_error == "raise":
        with pytest.raises(ModelRuntimeError, match="CUDA out of memory"):
            run(stream, pieces)
        return
    shown = run(stream, pieces)
    assert stream.outcome is not None
    assert not stream.outcome.result.checked
    if on_error == "block":
        assert stream.outcome.stopped
        assert stream.outcome.result.action == "block"
        assert shown.endswith(REFUSAL)
    else:
        assert shown == answer + " "
        assert stream.outcome.result.action == "unchecked"


def test_a_blank_answer_passes_unscored_as_in_check(windowed_detector):
    detector = RecordingScorer(windowed_detector)
    stream = guard(detector).stream("how do i make it")
    assert run(stream, [" ", "\n", "  "]) == " \n  "
    assert stream.outcome is not None
    assert stream.outcome.result.harm_score == 0.0
    assert not detector.calls


def test_bad_pieces_and_detectors_are_refused_clearly(windowed_detector):
    stream = guard(RecordingScorer(windowed_detector)).stream("")
    with pytest.raises(InvalidInputError, match="must be a str, got bytes"):
        stream.feed(b"cake")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="lone surrogate"):
        stream.feed("cake \ud800")

    class PairsOnly:
        def score(self, pairs: Sequence[Pair]) -> list[float]:
            return windowed_detector.score(pairs)

    with pytest.raises(ConfigError, match=r"window by window.*release: end"):
        Protector(detector=PairsOnly(), streaming=VERIFIED).stream("")
    with pytest.raises(ConfigError, match="remote detector"):
        ProtectorConfig.from_dict(
            {"detector": {"kind": "remote", "url": "http://127.0.0.1:8000"}, "streaming": {"release": "verified"}}
        )
    with pytest.raises(ConfigError, match=r"streaming\.first_window_tokens"):
        ProtectorConfig.from_dict({"preset": "default", "streaming": {"first_window_tokens": -1}})


def test_afeed_and_afinish_match_feed_and_finish(windowed_detector):
    answer = words(70, harmful_at=40)
    sync = guard(RecordingScorer(windowed_detector)).stream("")
    expected = run(sync, [word + " " for word in answer.split(" ")])

    async def main() -> str:
        stream = guard(RecordingScorer(windowed_detector)).stream("")
        shown = []
        for word in answer.split(" "):
            shown.append(await stream.afeed(word + " "))
            if stream.done:
                return "".join(shown)
        return "".join(shown) + await stream.afinish()

    assert asyncio.run(main()) == expected
