"""Properties that hold for any text, through the Python API, the LangChain runnable and ``scan``.

For every example: no exception but the project's documented errors (and those only for invalid input), no
verdict lost, benign output byte-identical, and nothing the user gave missing from the output. Texts include lone
surrogates, NUL, right-to-left and zero-width characters, and huge and empty strings. The detector is the tiny
keyword model (real, trained in seconds), so both verdicts occur; the examples are few to keep CI fast.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from faults import SCORE_FAULTS, CorruptedDetector, FailingDetector
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage, HumanMessage
from typer.testing import CliRunner

from langchain_mllm_protector import MLLMProtector
from protector_models import (
    ClassifierDetector,
    InvalidInputError,
    ModelRuntimeError,
    Protector,
    Result,
)
from protector_models.cli import app
from protector_models.testing import BENIGN_WORDS, HARMFUL_WORDS, QUESTIONS

REFUSAL = "Withheld."
ODD = ["\x00", "\u200b", "\u200d", "\u202e", "\u2067", "\u0645", "\ufeff", "\r", "\n", "\U0001f35e"]
"""NUL, zero-width space and joiner, right-to-left override and isolate, Arabic, BOM, line breaks, an emoji."""
SURROGATES = ["\ud800", "\udbff", "\udc00", "\udfff"]
WORDS = [*HARMFUL_WORDS, *BENIGN_WORDS, *" ".join(QUESTIONS).split()]

texts = st.one_of(
    st.just(""),
    st.lists(st.sampled_from(WORDS + ODD + SURROGATES), max_size=10).map(" ".join),  # both verdicts occur
    st.text(st.one_of(st.characters(), st.sampled_from(ODD + SURROGATES)), max_size=20),
    st.tuples(st.sampled_from(WORDS), st.integers(1000, 20_000)).map(lambda w: f"{w[0]} " * w[1]),  # huge
)
PROPERTY = settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


def valid(*values: str) -> bool:
    """Whether every value is Unicode text (encodable as UTF-8: no lone surrogate)."""
    try:
        for value in values:
            value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@pytest.fixture(scope="module")
def detector(keyword_detector_dir: Path) -> ClassifierDetector:
    protector = Protector.from_config({"detector": {"model": {"source": str(keyword_detector_dir), "max_length": 64}}})
    assert isinstance(protector.detector, ClassifierDetector)
    return protector.detector


def assert_result_keeps_the_pair(pair: tuple[str, str], result: Result) -> None:
    question, answer = pair
    assert (result.question, result.original) == (question, answer)  # nothing the user gave is lost
    if result.flagged:
        assert (result.output, result.action) == (REFUSAL, "refuse")
    else:
        assert result.output.encode("utf-8") == answer.encode("utf-8")  # byte-identical
        assert result.action == "none"


@PROPERTY
@given(pairs=st.lists(st.tuples(texts, texts), max_size=4))
def test_protect_and_check_on_any_text(detector, pairs):
    protector = Protector(detector, action="refuse", refusal_text=REFUSAL, on_error="pass")
    if not all(valid(*pair) for pair in pairs):
        for call in (protector.protect, protector.check):
            with pytest.raises(InvalidInputError, match=r"pair \d+: (question|answer) is not valid text"):
                call(pairs)
        return
    results = protector.protect(pairs)
    verdicts = protector.check(pairs)
    assert len(results) == len(verdicts) == len(pairs)
    for pair, result, verdict in zip(pairs, results, verdicts, strict=True):
        assert result.checked  # the model works: no verdict may be lost
        assert verdict.checked
        assert result.harm_score is not None
        assert 0.0 <= result.harm_score <= 1.0
        assert (verdict.flagged, verdict.harm_score) == (result.flagged, pytest.approx(result.harm_score, abs=1e-5))
        assert_result_keeps_the_pair(pair, result)


@PROPERTY
@given(
    pairs=st.lists(st.tuples(texts, texts).filter(lambda pair: valid(*pair)), min_size=1, max_size=3),
    fault=st.sampled_from(["raises", *SCORE_FAULTS]),
    on_error=st.sampled_from(["raise", "block", "pass"]),
)
def test_a_broken_detector_never_passes_an_answer_unmarked(detector, pairs, fault, on_error):
    broken = FailingDetector(detector) if fault == "raises" else CorruptedDetector(detector, SCORE_FAULTS[fault])
    protector = Protector(broken, action="refuse", refusal_text=REFUSAL, on_error=on_error)
    scored = any(answer.strip() for _, answer in pairs)  # a blank answer never reaches the detector
    try:
        results = protector.protect(pairs)
    except ModelRuntimeError:
        assert on_error == "raise"
        assert scored
        return
    assert on_error != "raise" or not scored
    for (question, answer), result in zip(pairs, results, strict=True):
        assert (result.question, result.original) == (question, answer)
        if not answer.strip():
            assert (result.checked, result.harm_score, result.output, result.action) == (True, 0.0, answer, "none")
            continue
        assert not result.checked
        assert result.harm_score is None
        assert result.error
        expected = (REFUSAL, "block", True) if on_error == "block" else (answer, "unchecked", False)
        assert (result.output, result.action, result.flagged) == expected


answers = st.one_of(texts, texts.map(AIMessage))
inputs = st.one_of(
    answers,
    st.fixed_dictionaries(
        {"question": st.one_of(texts, texts.map(lambda q: [HumanMessage(q)])), "answer": answers},
        optional={"other": st.one_of(texts, st.integers())},
    ),
)


def text_of(value: Any) -> str:
    return value.content if isinstance(value, AIMessage) else value


def question_text(value: Any) -> str:
    return value[0].content if isinstance(value, list) else value


@PROPERTY
@given(values=st.lists(inputs, min_size=1, max_size=4), with_verdict=st.booleans())
def test_the_langchain_guard_on_any_input(detector, values, with_verdict):
    guard = MLLMProtector(protector=Protector(detector, action="refuse", refusal_text=REFUSAL))
    if with_verdict:
        guard = guard.with_verdict()
    outputs = guard.batch(values, return_exceptions=True)
    assert len(outputs) == len(values)
    for value, output in zip(values, outputs, strict=True):
        answer = value["answer"] if isinstance(value, dict) else value
        texts_given = [text_of(answer), *([question_text(value["question"])] if isinstance(value, dict) else [])]
        if isinstance(output, Exception):
            assert isinstance(output, InvalidInputError), output
            assert not valid(*texts_given)
            continue
        if isinstance(value, dict) or (with_verdict and isinstance(value, str)):
            assert isinstance(output, dict)
            kept = value if isinstance(value, dict) else {}
            assert all(output[key] == kept[key] for key in kept if key != "answer")  # every other key kept
            checked, verdict = output["answer"], output.get("mllm_protector")
        else:
            checked, verdict = output, None
        assert type(checked) is type(answer)
        if isinstance(checked, AIMessage):
            assert checked.id == answer.id
            verdict = checked.response_metadata["mllm_protector"]
        if verdict is None:
            assert not with_verdict  # a plain str, as asked
            assert isinstance(checked, str)
            assert text_of(checked) in (text_of(answer), REFUSAL)
            continue
        assert verdict["checked"] is True
        if verdict["flagged"]:
            assert (text_of(checked), verdict["action"]) == (REFUSAL, "refuse")
        else:
            assert text_of(checked).encode() == text_of(answer).encode()


records = st.fixed_dictionaries(
    {"question": texts, "answer": texts},
    optional={"id": st.integers(), "note": texts, "meta": st.dictionaries(texts, st.one_of(st.none(), texts))},
)


@settings(PROPERTY, max_examples=20)
@given(rows=st.lists(records, min_size=1, max_size=5), escaped=st.booleans())
def test_scan_on_any_record(keyword_detector_dir, rows, escaped):
    with tempfile.TemporaryDirectory() as folder:
        directory = Path(folder)
        config = directory / "protector.yaml"
        model = {"source": str(keyword_detector_dir), "max_length": 64}
        config.write_text(yaml.safe_dump({"detector": {"model": model}, "refusal_text": REFUSAL, "action": "refuse"}))
        lines = [json.dumps(row, ensure_ascii=escaped) for row in rows]
        source = directory / "in.jsonl"
        source.write_bytes(b"".join(line.encode("utf-8", "surrogatepass") + b"\n" for line in lines))
        output = directory / "out.jsonl"
        result = CliRunner().invoke(
            app, ["scan", str(source), "-o", str(output), "--config", str(config), "--skip-invalid"]
        )
        readable = [
            valid(row["question"], row["answer"]) and (escaped or valid(line))
            for row, line in zip(rows, lines, strict=True)
        ]
        if not any(readable):  # every line skipped: a scan of nothing fails, and writes nothing
            assert result.exit_code == 2
            assert f"nothing to scan in in.jsonl: every line is invalid ({len(rows)} skipped" in result.stderr
            assert not output.exists()
            return
        assert result.exit_code == 0, result.output
        assert "Traceback" not in result.stderr
        written = iter(output.read_text(encoding="utf-8").split("\n")[:-1])  # not splitlines: U+0085 is text
        for number, (row, line) in enumerate(zip(rows, lines, strict=True), start=1):
            if not (valid(row["question"], row["answer"]) and (escaped or valid(line))):
                assert f"skipped: in.jsonl line {number}: " in result.stderr
                continue
            out = next(written)
            assert out.startswith(line[:-1])  # the record exactly as given, then the verdict
            record = json.loads(out)
            assert all(record[key] == value for key, value in row.items())
            assert record["action"] in ("none", "refuse")
            if record["flagged"]:
                assert record["output"] == REFUSAL
            else:
                assert record["output"].encode() == row["answer"].encode()
        assert next(written, None) is None
        assert "0 unchecked" in result.stderr
