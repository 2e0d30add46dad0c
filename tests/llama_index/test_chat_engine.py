"""ProtectedChatEngine: chat, achat, stream_chat and astream_chat over real LlamaIndex chat engines."""

from __future__ import annotations

import pytest
from li_support import BENIGN, HARMFUL, QUESTION, ScriptedLLM, chunks, recording
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.base.llms.types import ChatMessage, ImageBlock, MessageRole, TextBlock
from llama_index.core.chat_engine import SimpleChatEngine
from llama_index.core.chat_engine.types import AgentChatResponse
from llama_index.core.embeddings import MockEmbedding

from llama_index_mllm_protector import (
    MLLMProtectorPostprocessor,
    ProtectedChatEngine,
    ProtectedStreamingChatResponse,
)
from protector_models import ConfigError, HarmfulContentError, InvalidInputError, ModelRuntimeError, Pair, Protector

KEY = "mllm_protector"
BENIGN_ANSWER = "here is some cake and bread, with music "
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16


class FailingDetector:
    """A detector whose model fails on every call, as one out of memory does."""

    def score(self, pairs: object) -> list[float]:
        raise RuntimeError("CUDA out of memory")


def guarded(protector: Protector, reply: str, **kwargs: object) -> ProtectedChatEngine:
    return ProtectedChatEngine(SimpleChatEngine.from_defaults(llm=ScriptedLLM(reply=reply)), protector, **kwargs)


def last_answer(engine: ProtectedChatEngine) -> str | None:
    return [m for m in engine.chat_history if m.role == MessageRole.ASSISTANT][-1].content


def test_chat_replaces_a_harmful_answer_in_the_response_and_the_memory(protector: Protector) -> None:
    engine = guarded(protector, HARMFUL)
    response = engine.chat(QUESTION)
    assert isinstance(response, AgentChatResponse)
    assert response.response == protector.refusal_text
    assert response.metadata[KEY]["flagged"] is True
    assert response.metadata[KEY]["history_repaired"] is True
    assert last_answer(engine) == protector.refusal_text


def test_chat_leaves_a_benign_answer_byte_identical(protector: Protector) -> None:
    engine = guarded(protector, BENIGN_ANSWER)
    unguarded = SimpleChatEngine.from_defaults(llm=ScriptedLLM(reply=BENIGN_ANSWER)).chat(QUESTION)
    response = engine.chat(QUESTION)
    assert response.response == unguarded.response
    assert response.metadata[KEY]["flagged"] is False
    assert "history_repaired" not in response.metadata[KEY]
    assert last_answer(engine) == unguarded.response


def test_stream_chat_yields_the_checked_text(protector: Protector) -> None:
    response = guarded(protector, HARMFUL).stream_chat(QUESTION)
    assert isinstance(response, ProtectedStreamingChatResponse)
    assert response.metadata is not None
    assert response.metadata[KEY]["flagged"] is True
    assert list(response.response_gen) == [protector.refusal_text]
    assert response.response == protector.refusal_text


def test_stream_chat_benign_keeps_the_original_chunks(protector: Protector) -> None:
    engine = guarded(protector, BENIGN_ANSWER)
    response = engine.stream_chat(QUESTION)
    assert list(response.response_gen) == chunks(BENIGN_ANSWER)
    assert response.metadata is not None
    assert response.metadata[KEY]["changed"] is False


async def test_achat_and_astream_chat(protector: Protector, verdicts: list) -> None:
    engine = guarded(protector, HARMFUL)
    response = await engine.achat(QUESTION)
    assert response.response == protector.refusal_text
    streamed = await engine.astream_chat("tell me about this")
    assert [delta async for delta in streamed.async_response_gen()] == [protector.refusal_text]
    answers = [m.content for m in engine.chat_history if m.role == MessageRole.ASSISTANT]
    assert answers == [protector.refusal_text, protector.refusal_text]
    assert [(e.target, e.flagged, e.question) for e in verdicts] == [
        ("response", True, QUESTION),
        ("response", True, "tell me about this"),
    ]
    benign = await guarded(protector, BENIGN_ANSWER).astream_chat(QUESTION)
    assert [delta async for delta in benign.async_response_gen()] == chunks(BENIGN_ANSWER)


def test_images_in_the_turn_are_recorded_and_their_text_joins_the_question(protector: Protector) -> None:
    recorded, detector = recording(protector)
    engine = guarded(recorded, BENIGN)
    history = [
        ChatMessage(role=MessageRole.USER, content="hello"),
        ChatMessage(role=MessageRole.ASSISTANT, content="hi"),
        ChatMessage(role=MessageRole.USER, blocks=[TextBlock(text="look at this"), ImageBlock(image=PNG)]),
    ]
    response = engine.chat(QUESTION, chat_history=history)
    assert response.metadata[KEY]["images"] == 1
    assert detector.calls == [[Pair(f"look at this\n{QUESTION}", BENIGN)]]


def test_a_text_chat_message_is_accepted_and_one_with_images_is_refused_clearly(protector: Protector) -> None:
    engine = guarded(protector, BENIGN)
    response = engine.chat(ChatMessage(role=MessageRole.USER, content=QUESTION))
    assert response.response == BENIGN
    assert response.metadata[KEY]["images"] == 0
    with pytest.raises(InvalidInputError, match="chat_history"):
        engine.chat(ChatMessage(blocks=[TextBlock(text=QUESTION), ImageBlock(image=PNG)]))


def test_context_chat_engine_with_the_postprocessor_and_the_guard(protector: Protector) -> None:
    documents = [Document(text=HARMFUL, id_="harmful"), Document(text=BENIGN, id_="kitchen")]
    index = VectorStoreIndex.from_documents(documents, embed_model=MockEmbedding(embed_dim=8))
    llm = ScriptedLLM(reply=BENIGN_ANSWER)
    inner = index.as_chat_engine(
        chat_mode="context",
        llm=llm,
        similarity_top_k=2,
        node_postprocessors=[MLLMProtectorPostprocessor(protector, action="drop")],
    )
    response = ProtectedChatEngine(inner, protector).chat(QUESTION)
    assert [n.node.ref_doc_id for n in response.source_nodes] == ["kitchen"]
    assert "poison" not in llm.prompts[-1]
    assert BENIGN in llm.prompts[-1]
    assert response.response == BENIGN_ANSWER


def test_reset_and_bad_input(protector: Protector) -> None:
    engine = guarded(protector, BENIGN)
    engine.chat(QUESTION)
    engine.reset()
    assert engine.chat_history == []
    with pytest.raises(ConfigError, match="chat_engine must be a LlamaIndex BaseChatEngine"):
        ProtectedChatEngine(ScriptedLLM(), protector)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="message must be a str or a ChatMessage"):
        engine.chat(42)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="chat_history must hold ChatMessage"):
        engine.chat(QUESTION, chat_history=["hello"])  # type: ignore[list-item]


@pytest.mark.parametrize("method", ["chat", "achat", "stream_chat", "astream_chat"])
async def test_action_raise_keeps_the_harmful_answer_out_of_the_memory(protector: Protector, method: str) -> None:
    engine = guarded(protector, HARMFUL, action="raise")

    async def call() -> object:
        result = getattr(engine, method)(QUESTION)
        return await result if method.startswith("a") else result

    with pytest.raises(HarmfulContentError):
        await call()
    assert last_answer(engine) == protector.refusal_text  # not fed back to the LLM on the next turn


@pytest.mark.parametrize("method", ["chat", "achat", "stream_chat", "astream_chat"])
async def test_a_failing_detector_under_on_error_raise_keeps_the_unchecked_answer_out_of_the_memory(
    method: str,
) -> None:
    failing = Protector(FailingDetector(), on_error="raise", refusal_text="Withheld.")
    engine = guarded(failing, HARMFUL)

    async def call() -> object:
        result = getattr(engine, method)(QUESTION)
        return await result if method.startswith("a") else result

    with pytest.raises(ModelRuntimeError, match="CUDA out of memory"):
        await call()
    assert last_answer(engine) == "Withheld."  # the unchecked answer is not fed back to the LLM next turn
