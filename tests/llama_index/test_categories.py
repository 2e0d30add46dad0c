"""A guard LM's categories and the cascade's decider reach response metadata and the verdict events."""

from __future__ import annotations

from li_support import BENIGN, QUESTION, ScriptedLLM
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.embeddings import MockEmbedding

from llama_index_mllm_protector import ProtectedQueryEngine
from protector_models import Protector


def test_categories_reach_the_response_metadata_and_the_event(cascade_config: dict, verdicts: list) -> None:
    index = VectorStoreIndex.from_documents([Document(text=BENIGN)], embed_model=MockEmbedding(embed_dim=8))
    engine = ProtectedQueryEngine(
        index.as_query_engine(llm=ScriptedLLM(reply=BENIGN)), Protector.from_config(cascade_config)
    )
    response = engine.query(QUESTION)
    verdict = response.metadata["mllm_protector"]
    assert (verdict["categories"], verdict["decided_by"]) == ({"S10: Hate": True}, "second")
    assert [(e.target, e.categories, e.decided_by) for e in verdicts] == [("response", {"S10: Hate": True}, "second")]


def test_a_classifier_names_no_category(detector_config: dict, verdicts: list) -> None:
    index = VectorStoreIndex.from_documents([Document(text=BENIGN)], embed_model=MockEmbedding(embed_dim=8))
    engine = ProtectedQueryEngine(
        index.as_query_engine(llm=ScriptedLLM(reply=BENIGN)), Protector.from_config(detector_config)
    )
    assert engine.query(QUESTION).metadata["mllm_protector"]["categories"] == {}
    assert [(e.categories, e.decided_by) for e in verdicts] == [({}, None)]
