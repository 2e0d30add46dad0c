"""Verified release through LangChain: `stream`/`astream`/`astream_events` give text as the windows over it pass,
the model's stream is closed at the first flagged window, and the joined stream equals `invoke`'s answer.

The detector is the tiny keyword model reading windows of 24 answer tokens every 16, with a first window of 8.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk
from lc_support import QUESTION, RunRecorder

from langchain_mllm_protector import UNCHECKED_TAG, MLLMProtector
from protector_models import (
    ClassifierDetector,
    DetectorConfig,
    HarmfulContentError,
    InvalidInputError,
    ModelSpec,
    Protector,
    StreamingConfig,
)

REFUSAL = "Withheld."
FILLER = ["the", "a", "you", "can", "with", "then", "mix", "use", "it", "is", "here", "some", "and", "cake", "bread"]


def long_answer(words: int, *, harmful_at: int | None = None, seed: int = 0) -> str:
    generator = random.Random(seed)
    chosen = [generator.choice(FILLER) for _ in range(words)]
    if harmful_at is not None:
        chosen[harmful_at : harmful_at + 1] = ["first", "mix", "the", "poison", "and", "use", "it"]
    return " ".join(chosen)


class TokenCounter(BaseCallbackHandler):
    """How many tokens the chat model generated (its `on_llm_new_token` callbacks)."""

    def __init__(self) -> None:
        self.tokens = 0

    def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
        self.tokens += 1


@pytest.fixture(scope="module")
def windowed_detector(keyword_detector_dir: Path) -> ClassifierDetector:
    spec = ModelSpec(source=str(keyword_detector_dir), max_length=64)
    return ClassifierDetector.from_config(DetectorConfig(model=spec, window_tokens=24, window_stride=16))


@pytest.fixture
def verified(windowed_detector: ClassifierDetector) -> MLLMProtector:
    streaming = StreamingConfig(release="verified", first_window_tokens=8)
    protector = Protector(detector=windowed_detector, action="refuse", refusal_text=REFUSAL, streaming=streaming)
    return MLLMProtector(protector=protector)


def model(answer: str, counter: TokenCounter | None = None) -> GenericFakeChatModel:
    """A chat model that streams ``answer`` word by word (the words and the spaces between them)."""
    return GenericFakeChatModel(messages=iter([AIMessage(answer, id="ai-1")]), callbacks=[counter] if counter else None)


def test_a_benign_answer_is_released_as_it_is_verified_and_joins_to_invokes(verified):
    answer = long_answer(120)
    counter = TokenCounter()
    chunks, generated_at_first_text = [], None
    for chunk in (model(answer, counter) | verified).stream("hi"):
        chunks.append(chunk)
        if chunk.content and generated_at_first_text is None:
            generated_at_first_text = counter.tokens
    assert all(isinstance(chunk, AIMessageChunk) for chunk in chunks)
    assert len([c for c in chunks if c.content]) > 5  # released window by window, not in one piece
    assert generated_at_first_text is not None
    assert generated_at_first_text < 40
    joined = sum(chunks[1:], chunks[0])
    invoked = (model(answer) | verified).invoke("hi")
    assert joined.content == invoked.content == answer
    assert joined.id == invoked.id == "ai-1"
    verdict = joined.response_metadata["mllm_protector"]
    assert verdict["flagged"] is False
    assert verdict["harm_score"] == pytest.approx(invoked.response_metadata["mllm_protector"]["harm_score"], abs=1e-5)
    assert verdict["stream"]["release"] == "verified"
    assert verdict["stream"]["released_chars"] == len(answer)


async def test_a_harmful_answer_stops_the_model_and_ends_with_the_refusal(verified):
    answer = long_answer(200, harmful_at=100)
    counter = TokenCounter()
    recorder = RunRecorder()
    chunks = list((model(answer, counter) | verified).stream("hi", {"callbacks": [recorder]}))
    text = "".join(str(chunk.content) for chunk in chunks)
    assert text.endswith("\n\n" + REFUSAL)
    assert "poison" not in text
    assert answer.startswith(text[: -len("\n\n" + REFUSAL)])
    assert counter.tokens < len(answer.split(" ")) * 2 - 1  # the model was stopped before its end
    assert counter.tokens < (100 + 7 + 24 + 16 + 4) * 2  # within about a window and a stride of the sentence
    ((name, event, _),) = recorder.events  # one verdict event, with the stream's record
    assert name == "mllm_protector"
    assert event["flagged"] is True
    assert event["stream"]["stopped"] is True
    assert event["stream"]["released_chars"] == len(text) - len("\n\n" + REFUSAL)

    counter = TokenCounter()
    achunks = [chunk async for chunk in (model(answer, counter) | verified).astream("hi")]
    assert "".join(str(chunk.content) for chunk in achunks) == text
    assert counter.tokens < len(answer.split(" ")) * 2 - 1


async def test_the_wrapped_model_streams_verified_text_and_is_stopped(verified):
    benign = long_answer(100)
    chunks = list(verified.wrap(model(benign)).stream(QUESTION))
    assert len([c for c in chunks if c.content]) > 3
    joined = sum(chunks[1:], chunks[0])
    assert joined.content == benign
    assert joined.response_metadata["mllm_protector"]["saw_question"] is True

    harmful = long_answer(200, harmful_at=100)
    counter = TokenCounter()
    achunks = [c async for c in verified.wrap(model(harmful, counter)).astream(QUESTION)]
    assert "".join(str(c.content) for c in achunks).endswith(REFUSAL)
    assert counter.tokens < len(harmful.split(" ")) * 2 - 1


async def test_astream_events_without_unchecked_tag_show_only_released_text(verified):
    harmful = long_answer(200, harmful_at=100)
    events = [
        e
        async for e in verified.wrap(model(harmful)).astream_events(
            QUESTION, version="v2", exclude_tags=[UNCHECKED_TAG]
        )
    ]
    assert not [e for e in events if e["event"] == "on_chat_model_stream"]  # the raw tokens still carry the tag
    streamed = [
        e["data"]["chunk"].content
        for e in events
        if e["event"] == "on_chain_stream" and e["name"] == "ProtectedGenericFakeChatModel"
    ]
    assert len([text for text in streamed if text]) > 2  # released piece by piece
    assert "poison" not in "".join(streamed)
    assert "".join(streamed).endswith(REFUSAL)
    verdicts = [e for e in events if e["event"] == "on_custom_event" and e["name"] == "mllm_protector"]
    assert len(verdicts) == 1
    assert verdicts[0]["data"]["stream"]["stopped"] is True


def test_str_and_dict_streams(verified):
    pieces = [word + " " for word in long_answer(60).split(" ")]
    out = list(verified.transform(iter(pieces)))
    assert all(isinstance(piece, str) for piece in out)
    assert "".join(out) == "".join(pieces)
    assert len(out) > 3

    with_verdict = verified.with_verdict("verdict")
    dicts = [{"question": QUESTION, "context": [1]}, *({"answer": piece} for piece in pieces)]
    outputs = list(with_verdict.transform(iter(dicts)))
    assert all(set(o) <= {"question", "answer", "context", "verdict"} for o in outputs)
    assert "".join(o.get("answer", "") for o in outputs) == "".join(pieces)
    last = outputs[-1]
    assert last["question"] == QUESTION
    assert last["context"] == [1]
    assert last["verdict"]["saw_question"] is True

    with pytest.raises(InvalidInputError, match="lacks 'question'"):
        list(verified.transform(iter([{"answer": piece} for piece in pieces])))


def test_action_raise_raises_from_the_stream_after_the_verdict_event(verified):
    recorder = RunRecorder()
    harmful = long_answer(120, harmful_at=60)
    received: list[Any] = []
    chain = model(harmful) | verified.model_copy(update={"action": "raise"})

    def consume() -> None:
        for chunk in chain.stream("hi", {"callbacks": [recorder]}):
            received.append(chunk.content)

    with pytest.raises(HarmfulContentError):
        consume()
    assert received  # the text before the flagged window had been released
    assert "poison" not in "".join(received)
    ((_, event, _),) = recorder.events
    assert event["flagged"] is True
    assert event["stream"]["stopped"] is True


def test_tool_calls_pass_or_are_judged_as_in_invoke(verified):
    call = {"name": "search", "args": '{"query": "mix the poison"}', "id": "call-1", "index": 0}
    only_calls = [AIMessageChunk(content="", id="ai-2", tool_call_chunks=[call])]
    (out,) = list(verified.transform(iter(only_calls)))
    assert out.tool_calls == only_calls[0].tool_calls  # passed untouched

    judged = verified.model_copy(update={"check_tool_calls": True})
    chunks = [
        AIMessageChunk(content="here is some cake ", id="ai-3"),
        AIMessageChunk(content="", tool_call_chunks=[call]),
    ]
    outputs = list(judged.transform(iter(chunks)))
    joined = sum(outputs[1:], outputs[0])
    assert joined.content.endswith(REFUSAL)  # the call's arguments were judged with the text
    assert not joined.tool_calls
    assert joined.response_metadata["mllm_protector"]["judged_tool_calls"] is True


def test_a_whole_message_is_guarded_whole(verified):
    harmful = long_answer(40, harmful_at=20)
    (out,) = list(verified.stream(AIMessage(harmful, id="m")))
    assert type(out) is AIMessage
    assert out.content == REFUSAL
    assert out.id == "m"


def test_release_end_still_buffers(windowed_detector):
    guard = MLLMProtector(protector=Protector(detector=windowed_detector, action="refuse", refusal_text=REFUSAL))
    chunks = list((model(long_answer(60)) | guard).stream("hi"))
    assert len(chunks) == 1
