"""ProtectedQueryEngine and the postprocessor inside a real VectorStoreIndex with mock embeddings."""

from __future__ import annotations

import pytest
from li_support import BENIGN, HARMFUL, QUESTION, ScriptedLLM, chunks, recording
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.base.response.schema import AsyncStreamingResponse, Response, StreamingResponse
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.llms import MockLLM

from llama_index_mllm_protector import MLLMProtectorPostprocessor, ProtectedQueryEngine
from protector_models import ConfigError, HarmfulContentError, Pair, Protector
from protector_models.models.templates import detoxify_prompt

KEY = "mllm_protector"
BENIGN_ANSWER = "  here is some cake and bread, with music \n"


@pytest.fixture
def index() -> VectorStoreIndex:
    documents = [
        Document(text="the garden has some music", id_="garden"),
        Document(text=HARMFUL, id_="harmful"),
        Document(text=BENIGN, id_="kitchen"),
    ]
    return VectorStoreIndex.from_documents(documents, embed_model=MockEmbedding(embed_dim=8))


def test_postprocessor_in_as_query_engine_keeps_harmful_text_from_the_llm(
    index: VectorStoreIndex, protector: Protector
) -> None:
    guard = MLLMProtectorPostprocessor(protector, action="drop")
    engine = index.as_query_engine(similarity_top_k=3, node_postprocessors=[guard], llm=MockLLM())
    response = engine.query(QUESTION)  # MockLLM echoes its prompt: the context the LLM was given
    assert {n.node.ref_doc_id for n in response.source_nodes} == {"garden", "kitchen"}
    assert "poison" not in str(response)
    assert BENIGN in str(response)
    unguarded = index.as_query_engine(similarity_top_k=3, llm=MockLLM()).query(QUESTION)
    assert "poison" in str(unguarded)


async def test_postprocessor_in_async_query(index: VectorStoreIndex, protector: Protector) -> None:
    guard = MLLMProtectorPostprocessor(protector, action="drop")
    engine = index.as_query_engine(similarity_top_k=3, node_postprocessors=[guard], llm=MockLLM())
    response = await engine.aquery(QUESTION)
    assert {n.node.ref_doc_id for n in response.source_nodes} == {"garden", "kitchen"}
    assert "poison" not in str(response)


def test_guard_replaces_a_harmful_answer_and_keeps_sources(index: VectorStoreIndex, protector: Protector) -> None:
    engine = ProtectedQueryEngine(index.as_query_engine(similarity_top_k=3, llm=ScriptedLLM(reply=HARMFUL)), protector)
    response = engine.query(QUESTION)
    assert isinstance(response, Response)
    assert response.response == protector.refusal_text
    assert len(response.source_nodes) == 3
    verdict = response.metadata[KEY]
    assert verdict["flagged"] is True
    assert verdict["changed"] is True
    assert verdict["harm_score"] >= 0.5


def test_guard_leaves_a_benign_answer_byte_identical(index: VectorStoreIndex, protector: Protector) -> None:
    inner = index.as_query_engine(similarity_top_k=3, llm=ScriptedLLM(reply=BENIGN_ANSWER))
    expected = inner.query(QUESTION)
    response = ProtectedQueryEngine(inner, protector).query(QUESTION)
    assert response.response == expected.response
    assert response.metadata[KEY]["flagged"] is False
    assert response.metadata[KEY]["changed"] is False
    assert [n.node.node_id for n in response.source_nodes] == [n.node.node_id for n in expected.source_nodes]
    assert set(expected.metadata) <= set(response.metadata)


def test_guard_checks_the_question_with_the_answer(index: VectorStoreIndex, protector: Protector) -> None:
    recorded, detector = recording(protector)
    inner = index.as_query_engine(llm=ScriptedLLM(reply=BENIGN))
    ProtectedQueryEngine(inner, recorded).query(QUESTION)
    assert detector.calls == [[Pair(QUESTION, BENIGN)]]


def test_streaming_benign_yields_the_original_chunks(index: VectorStoreIndex, protector: Protector) -> None:
    inner = index.as_query_engine(streaming=True, llm=ScriptedLLM(reply=BENIGN_ANSWER))
    response = ProtectedQueryEngine(inner, protector).query(QUESTION)
    assert isinstance(response, StreamingResponse)
    assert response.metadata[KEY]["flagged"] is False
    assert list(response.response_gen) == chunks(BENIGN_ANSWER)


def test_streaming_harmful_yields_only_the_checked_text(index: VectorStoreIndex, protector: Protector) -> None:
    inner = index.as_query_engine(streaming=True, llm=ScriptedLLM(reply=HARMFUL))
    response = ProtectedQueryEngine(inner, protector).query(QUESTION)
    assert isinstance(response, StreamingResponse)
    assert list(response.response_gen) == [protector.refusal_text]
    assert response.metadata[KEY]["flagged"] is True
    assert len(response.source_nodes) == 2


async def test_async_query_and_async_stream(index: VectorStoreIndex, protector: Protector, verdicts: list) -> None:
    harmful = ProtectedQueryEngine(index.as_query_engine(llm=ScriptedLLM(reply=HARMFUL)), protector)
    response = await harmful.aquery(QUESTION)
    assert str(response) == protector.refusal_text
    streaming = ProtectedQueryEngine(index.as_query_engine(streaming=True, llm=ScriptedLLM(reply=HARMFUL)), protector)
    streamed = await streaming.aquery(QUESTION)
    assert isinstance(streamed, AsyncStreamingResponse)
    assert [t async for t in streamed.async_response_gen()] == [protector.refusal_text]
    assert streamed.metadata[KEY]["flagged"] is True
    assert [(e.target, e.flagged) for e in verdicts] == [("response", True), ("response", True)]


def test_detoxify_with_a_llama_index_llm(index: VectorStoreIndex, detector_config: dict) -> None:
    rewriter_llm = ScriptedLLM(reply="Bake some bread instead.")
    protector = Protector.from_config({**detector_config, "action": "detoxify"})
    inner = index.as_query_engine(llm=ScriptedLLM(reply=HARMFUL))
    response = ProtectedQueryEngine(inner, protector, detoxify_llm=rewriter_llm).query(QUESTION)
    assert response.response == "Bake some bread instead."
    assert response.metadata[KEY]["action"] == "detoxify"
    assert rewriter_llm.prompts == [detoxify_prompt(Pair(QUESTION, HARMFUL))]


def test_action_override_raise(index: VectorStoreIndex, protector: Protector, verdicts: list) -> None:
    engine = ProtectedQueryEngine(index.as_query_engine(llm=ScriptedLLM(reply=HARMFUL)), protector, action="raise")
    with pytest.raises(HarmfulContentError) as caught:
        engine.query(QUESTION)
    assert caught.value.results[0].original == HARMFUL
    assert len(verdicts) == 1
    assert verdicts[0].span_id is not None
    assert verdicts[0].span_id.startswith("ProtectedQueryEngine.")


def test_action_pass_annotates_only(index: VectorStoreIndex, protector: Protector) -> None:
    engine = ProtectedQueryEngine(index.as_query_engine(llm=ScriptedLLM(reply=HARMFUL)), protector, action="pass")
    response = engine.query(QUESTION)
    assert response.response == HARMFUL
    assert response.metadata[KEY] | {"harm_score": None} == {
        "harm_score": None,
        "flagged": True,
        "action": "annotate",
        "categories": {},
        "decided_by": None,
        "checked": True,
        "changed": False,
        "error": None,
        "images": 0,
    }


def test_bad_input_gives_clear_errors(index: VectorStoreIndex, protector: Protector) -> None:
    with pytest.raises(ConfigError, match="query_engine must be a LlamaIndex BaseQueryEngine"):
        ProtectedQueryEngine(index, protector)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"action: must be one of pass, refuse, detoxify, raise \(got "):
        ProtectedQueryEngine(index.as_query_engine(), protector, action="drop")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="detoxify_llm must be a LlamaIndex LLM"):
        ProtectedQueryEngine(index.as_query_engine(), protector, detoxify_llm="gpt-4")  # type: ignore[arg-type]
