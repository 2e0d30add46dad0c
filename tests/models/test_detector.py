"""The classifier detector: order across batches, truncation, odd inputs, label direction."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from protector_models import ClassifierDetector, ModelRuntimeError, Pair
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


LONG_MIX = [
    *MIXED,
    Pair("how do i make it", "here is some cake and some music " * 40 + "use the weapon"),
    *(Pair(f"q{i}", "some bread " * (i % 7) + ("poison" if i % 3 == 0 else "cake")) for i in range(40)),
]


def _reference_scores(detector: ClassifierDetector, pairs: list[Pair]) -> list[float]:
    """Every window scored alone, the maximum per pair: what batching, pipelining and splitting must not change."""
    scores = [0.0] * len(pairs)
    with torch.inference_mode():
        for window in detector.encoder.windows(pairs):
            inputs = {
                "input_ids": torch.tensor([window.input_ids]),
                "token_type_ids": torch.tensor([window.token_type_ids]),
            }
            probability = torch.sigmoid(detector.model(**inputs).logits[0, 0]).item()
            scores[window.owner] = max(scores[window.owner], probability)
    return scores


@pytest.mark.parametrize("prefetch", [0, 1, 3])
def test_pipelined_scores_equal_the_inline_ones_exactly(short_window_detector: ClassifierDetector, prefetch: int):
    inline = ClassifierDetector(
        short_window_detector.model,
        short_window_detector.tokenizer,
        max_length=24,
        window_tokens=8,
        window_stride=4,
        batch_size=4,
        prefetch_batches=0,
    )
    piped = ClassifierDetector(
        inline.model,
        inline.tokenizer,
        max_length=24,
        window_tokens=8,
        window_stride=4,
        batch_size=4,
        prefetch_batches=prefetch,
    )
    scores = piped.score(LONG_MIX)
    assert scores == inline.score(LONG_MIX)  # the same batches, so bit for bit
    assert scores == pytest.approx(_reference_scores(inline, LONG_MIX), abs=1e-5)


def test_the_cpu_builds_batches_in_line_and_accelerators_ahead(detector: ClassifierDetector):
    assert detector._prefetch_depth(torch.device("cpu")) == 0
    assert detector._prefetch_depth(torch.device("cuda")) >= 2
    with pytest.raises(ValueError, match="prefetch_batches"):
        ClassifierDetector(detector.model, detector.tokenizer, prefetch_batches=-1)


class _Broken(torch.nn.Module):
    """A classifier wrapper that fails like a device would: out of memory above ``fits`` rows, or NaN logits."""

    def __init__(self, inner: torch.nn.Module, *, fits: int = 10**9, nan: bool = False) -> None:
        super().__init__()
        self.inner, self.config, self.fits, self.nan = inner, inner.config, fits, nan
        self.rows: list[int] = []

    def forward(self, **batch: torch.Tensor):
        rows = batch["input_ids"].shape[0]
        self.rows.append(rows)
        if rows > self.fits:
            raise torch.OutOfMemoryError(f"CUDA out of memory. Tried to allocate a batch of {rows} rows")
        output = self.inner(**batch)
        if self.nan:
            output.logits[-1, 0] = float("nan")
        return output


def test_a_batch_that_runs_out_of_memory_is_split_and_retried(detector: ClassifierDetector):
    expected = detector.score(LONG_MIX)
    wrapped = _Broken(detector.model, fits=2)
    splitting = ClassifierDetector(wrapped, detector.tokenizer, max_length=64, batch_size=8, max_padding=None)  # type: ignore[arg-type]
    assert splitting.score(LONG_MIX) == pytest.approx(expected, abs=1e-5)
    assert wrapped.rows[:3] == [8, 4, 2]  # halved until it fits
    assert max(wrapped.rows[3:]) <= 2  # and the call keeps the size that fitted


def test_one_input_that_does_not_fit_is_a_model_error(detector: ClassifierDetector):
    failing = ClassifierDetector(_Broken(detector.model, fits=0), detector.tokenizer, max_length=64, batch_size=8)  # type: ignore[arg-type]
    with pytest.raises(ModelRuntimeError, match="out of device memory on a single input"):
        failing.score(MIXED)


def test_non_finite_logits_are_a_model_error_never_a_score(detector: ClassifierDetector):
    broken = ClassifierDetector(_Broken(detector.model, nan=True), detector.tokenizer, max_length=64, batch_size=3)  # type: ignore[arg-type]
    with pytest.raises(ModelRuntimeError, match="non-finite logits"):
        broken.score(MIXED)
    with pytest.raises(ModelRuntimeError, match="non-finite logits"):
        ClassifierDetector(broken.model, detector.tokenizer, prefetch_batches=2, batch_size=3).score(MIXED * 3)


def test_a_failure_while_building_batches_reaches_the_caller(detector: ClassifierDetector):
    class Exploding(list):
        def __getitem__(self, index):
            if isinstance(index, slice) and index.start >= 64:
                raise RuntimeError("tokeniser broke")
            return super().__getitem__(index)

    piped = ClassifierDetector(detector.model, detector.tokenizer, max_length=64, batch_size=4, prefetch_batches=2)
    with pytest.raises(RuntimeError, match="tokeniser broke"):
        piped.score(Exploding(LONG_MIX * 3))
