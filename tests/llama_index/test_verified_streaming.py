"""Verified release in the LlamaIndex guards: streamed answers come out as the windows over them pass, the model's
stream ends at the first flagged window, the verdict fills the metadata when the stream ends, and the chat memory
keeps what the user saw.

The detector is the tiny keyword model reading windows of 24 answer tokens every 16, with a first window of 8.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from li_support import QUESTION, ScriptedLLM, chunks
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.base.llms.generic_utils import astream_completion_response_to_chat_response
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponseAsyncGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    MessageRole,
)
from llama_index.core.base.response.schema import AsyncStreamingResponse, StreamingResponse
from llama_index.core.chat_engine import SimpleChatEngine
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback

from llama_index_mllm_protector import ProtectedChatEngine, ProtectedQueryEngine
from protector_models import ClassifierDetector, DetectorConfig, HarmfulContentError, ModelSpec, Protector
from protector_models.config.schema import StreamingConfig

KEY = "mllm_protector"
REFUSAL = "Withheld."
FILLER = ["the", "a", "you", "can", "with", "then", "mix", "use", "it", "is", "here", "some", "and", "cake", "bread"]


def long_answer(words: int, *, harmful_at: int | None = None, seed: int = 0) -> str:
    generator = random.Random(seed)
    chosen = [generator.choice(FILLER) for _ in range(words)]
    if harmful_at is not None:
        chosen[harmful_at : harmful_at + 1] = ["first", "mix", "the", "poison", "and", "use", "it"]
    return " ".join(chosen)


class CountingLLM(ScriptedLLM):
    """:class:`ScriptedLLM` that counts the pieces it generated (its stream is pulled piece by piece)."""

    generated: int = 0

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        self.prompts.append(prompt)

        def stream() -> CompletionResponseGen:
            text = ""
            for delta in chunks(self.reply):
                self.generated += 1
                text += delta
                yield CompletionResponse(text=text, delta=delta)

        return stream()

    @llm_completion_callback()
    async def astream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseAsyncGen:
        """Streams as a served model does: a piece every 10 ms, whether or not anyone reads it yet."""
        self.prompts.append(prompt)

        async def stream() -> CompletionResponseAsyncGen:
            text = ""
            for delta in chunks(self.reply):
                await asyncio.sleep(0.01)
                self.generated += 1
                text += delta
                yield CompletionResponse(text=text, delta=delta)

        return stream()

    @llm_chat_callback()
    async def astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseAsyncGen:
        completions = await self.astream_complete(self.messages_to_prompt(messages), formatted=True)
        return astream_completion_response_to_chat_response(completions)


@pytest.fixture(scope="module")
def windowed_detector(keyword_detector_dir: Path) -> ClassifierDetector:
    spec = ModelSpec(source=str(keyword_detector_dir), max_length=64)
    return ClassifierDetector.from_config(DetectorConfig(model=spec, window_tokens=24, window_stride=16))


@pytest.fixture
def verified(windowed_detector: ClassifierDetector) -> Protector:
    streaming = StreamingConfig(release="verified", first_window_tokens=8)
    return Protector(detector=windowed_detector, action="refuse", refusal_text=REFUSAL, streaming=streaming)


@pytest.fixture
def index() -> VectorStoreIndex:
    documents = [Document(text="the garden has some music", id_="garden")]
    return VectorStoreIndex.from_documents(documents, embed_model=MockEmbedding(embed_dim=8))


def test_a_streamed_query_answer_comes_out_as_it_is_verified(index, verified, verdicts):
    answer = long_answer(120)
    llm = CountingLLM(reply=answer)
    response = ProtectedQueryEngine(index.as_query_engine(streaming=True, llm=llm), verified).query(QUESTION)
    assert isinstance(response, StreamingResponse)
    assert response.metadata[KEY]["pending"] is True  # nothing judged yet
    pieces, generated_at_first = [], None
    for piece in response.response_gen:
        pieces.append(piece)
        generated_at_first = llm.generated if generated_at_first is None else generated_at_first
    assert "".join(pieces) == answer
    assert len(pieces) > 3
    assert generated_at_first is not None
    assert generated_at_first < 20  # the first text came with the first window, not at the end
    assert response.metadata[KEY]["flagged"] is False
    assert response.metadata[KEY]["stream"]["released_chars"] == len(answer)
    assert [(e.flagged, e.answer) for e in verdicts] == [(False, answer)]


async def test_a_harmful_query_answer_stops_the_model(index, verified, verdicts):
    answer = long_answer(200, harmful_at=100)
    llm = CountingLLM(reply=answer)
    response = ProtectedQueryEngine(index.as_query_engine(streaming=True, llm=llm), verified).query(QUESTION)
    text = "".join(response.response_gen)
    assert text.endswith("\n\n" + REFUSAL)
    assert "poison" not in text
    assert llm.generated < 100 + 7 + 24 + 16 + 4  # stopped about a window and a stride after the sentence
    assert response.metadata[KEY]["flagged"] is True
    assert response.metadata[KEY]["stream"]["stopped"] is True

    llm = CountingLLM(reply=answer)
    streamed = await ProtectedQueryEngine(index.as_query_engine(streaming=True, llm=llm), verified).aquery(QUESTION)
    assert isinstance(streamed, AsyncStreamingResponse)
    assert "".join([t async for t in streamed.async_response_gen()]) == text
    assert llm.generated < 100 + 7 + 24 + 16 + 4
    assert [e.flagged for e in verdicts] == [True, True]


def test_a_stopped_chat_stream_leaves_what_the_user_saw_in_the_memory(verified):
    answer = long_answer(200, harmful_at=100)
    engine = ProtectedChatEngine(SimpleChatEngine.from_defaults(llm=CountingLLM(reply=answer)), verified)
    reply = engine.stream_chat(QUESTION)
    shown = "".join(reply.response_gen)
    assert shown.endswith(REFUSAL)
    assert "poison" not in shown
    history = engine.chat_history  # waits for LlamaIndex's thread (it reads the model to its end)
    assert [m.role for m in history] == [MessageRole.USER, MessageRole.ASSISTANT]
    assert history[-1].content == shown
    assert reply.metadata[KEY]["history_repaired"] is True
    assert reply.metadata[KEY]["stream"]["stopped"] is True

    benign = long_answer(80, seed=1)
    engine = ProtectedChatEngine(SimpleChatEngine.from_defaults(llm=CountingLLM(reply=benign)), verified)
    reply = engine.stream_chat(QUESTION)
    assert "".join(reply.response_gen) == benign
    assert engine.chat_history[-1].content == benign
    assert reply.metadata[KEY]["flagged"] is False


async def test_a_stopped_async_chat_stream_cancels_the_model_and_keeps_what_the_user_saw(verified):
    answer = long_answer(300, harmful_at=100)
    llm = CountingLLM(reply=answer)
    engine = ProtectedChatEngine(SimpleChatEngine.from_defaults(llm=llm), verified)
    reply = await engine.astream_chat(QUESTION)
    shown = "".join([delta async for delta in reply.async_response_gen()])
    assert shown.endswith(REFUSAL)
    assert "poison" not in shown
    assert llm.generated < len(chunks(answer))  # LlamaIndex's task reading the model was cancelled before its end
    assert engine.chat_history[-1].content == shown
    assert reply.metadata[KEY]["history_repaired"] is True


async def test_action_raise_in_a_verified_chat_stream_keeps_the_refusal_in_the_memory(windowed_detector):
    streaming = StreamingConfig(release="verified", first_window_tokens=8)
    protector = Protector(detector=windowed_detector, action="raise", refusal_text=REFUSAL, streaming=streaming)
    answer = long_answer(120, harmful_at=60)
    engine = ProtectedChatEngine(SimpleChatEngine.from_defaults(llm=CountingLLM(reply=answer)), protector)
    reply = engine.stream_chat(QUESTION)
    shown: list[str] = []

    def consume() -> None:
        for delta in reply.response_gen:
            shown.append(delta)

    with pytest.raises(HarmfulContentError):
        consume()
    assert engine.chat_history[-1].content == "".join(shown) + "\n\n" + REFUSAL
