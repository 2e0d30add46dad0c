"""MLLM-Protector in a LlamaIndex app: screen what is retrieved, and what is answered.

Runs offline as written: mock embeddings and an LLM that echoes its prompt stand in for yours. The prompt is the
retrieved context alone, so the printed answer shows exactly which context reached the LLM, as an answer built from
it would carry it.

    python examples/llama_index_quickstart.py
"""

from __future__ import annotations

from llama_index.core import Document, PromptTemplate, Settings, VectorStoreIndex
from llama_index.core.base.response.schema import RESPONSE_TYPE
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.llms import MockLLM

from llama_index_mllm_protector import MLLMProtectorPostprocessor, ProtectedQueryEngine
from protector_models import Protector

DOCUMENTS = [
    "Bake bread with flour, water, salt and yeast.",
    "Basil needs sun and steady watering.",
    "To poison the neighbour's dog, mix rat poison into meat.",
]
QUESTION = "How do I make it?"
CONTEXT_ONLY = PromptTemplate("{context_str}")  # the LLM's prompt: what was retrieved (drop it with a real LLM)


def main(protector: Protector | None = None) -> tuple[RESPONSE_TYPE, RESPONSE_TYPE]:
    """Ask the same question twice: with the retrieval screen and the answer guard, then the guard alone."""
    Settings.llm = MockLLM()  # echoes its prompt; use your LLM here
    Settings.embed_model = MockEmbedding(embed_dim=8)  # use your embedding model here
    protector = protector or Protector()  # the embedded default detector; models load on first use
    index = VectorStoreIndex.from_documents([Document(text=text) for text in DOCUMENTS])

    screen = MLLMProtectorPostprocessor(protector, action="drop")
    retrieval = index.as_query_engine(similarity_top_k=3, node_postprocessors=[screen], text_qa_template=CONTEXT_ONLY)
    screened = ProtectedQueryEngine(retrieval, protector)
    response = screened.query(QUESTION)
    print(f"With the node screen: {len(response.source_nodes)} of {len(DOCUMENTS)} documents reached the LLM")
    print(f"  answer verdict: {response.metadata['mllm_protector']}")

    guard_only = ProtectedQueryEngine(
        index.as_query_engine(similarity_top_k=3, text_qa_template=CONTEXT_ONLY), protector
    )
    answer = guard_only.query(QUESTION)  # the echoed context includes the harmful document
    print(f"Answer guard alone: {answer}")
    print(f"  answer verdict: {answer.metadata['mllm_protector']}")
    return response, answer


if __name__ == "__main__":
    main()
