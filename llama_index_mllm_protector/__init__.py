"""MLLM-Protector for LlamaIndex: screen retrieved nodes and final answers for harmful content.

>>> from llama_index_mllm_protector import MLLMProtectorPostprocessor, ProtectedQueryEngine
>>> engine = ProtectedQueryEngine(index.as_query_engine(node_postprocessors=[MLLMProtectorPostprocessor()]))
"""

from llama_index_mllm_protector.building import ProtectorSource, build_protector
from llama_index_mllm_protector.chat_engine import ProtectedChatEngine, ProtectedStreamingChatResponse
from llama_index_mllm_protector.events import ProtectorVerdictEvent
from llama_index_mllm_protector.guarding import METADATA_KEY
from llama_index_mllm_protector.postprocessor import MLLMProtectorPostprocessor, NodeAction
from llama_index_mllm_protector.query_engine import ProtectedQueryEngine
from llama_index_mllm_protector.rewriter import LlamaIndexRewriter

__all__ = [
    "METADATA_KEY",
    "LlamaIndexRewriter",
    "MLLMProtectorPostprocessor",
    "NodeAction",
    "ProtectedChatEngine",
    "ProtectedQueryEngine",
    "ProtectedStreamingChatResponse",
    "ProtectorSource",
    "ProtectorVerdictEvent",
    "build_protector",
]
