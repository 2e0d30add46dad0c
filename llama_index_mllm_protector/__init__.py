"""MLLM-Protector for LlamaIndex: screen retrieved nodes and final answers for harmful content.

>>> from llama_index_mllm_protector import MLLMProtectorPostprocessor, ProtectedQueryEngine
>>> engine = ProtectedQueryEngine(index.as_query_engine(node_postprocessors=[MLLMProtectorPostprocessor()]))
"""

import llama_index_mllm_protector._installed  # noqa: F401 (first: a missing framework is named with its install command)
from llama_index_mllm_protector.agents import ProtectedFunctionAgent, ProtectedReActAgent
from llama_index_mllm_protector.building import ProtectorSource, build_protector
from llama_index_mllm_protector.chat_engine import ProtectedChatEngine, ProtectedStreamingChatResponse
from llama_index_mllm_protector.events import ProtectorVerdictEvent
from llama_index_mllm_protector.guarding import METADATA_KEY
from llama_index_mllm_protector.postprocessor import MLLMProtectorPostprocessor, NodeAction
from llama_index_mllm_protector.query_engine import ProtectedQueryEngine
from llama_index_mllm_protector.rewriter import LlamaIndexRewriter
from protector_models.errors import (
    ConfigError,
    HarmfulContentError,
    InvalidInputError,
    ModelLoadError,
    ModelRuntimeError,
    ProtectorError,
)

__all__ = [
    "METADATA_KEY",
    "ConfigError",
    "HarmfulContentError",
    "InvalidInputError",
    "LlamaIndexRewriter",
    "MLLMProtectorPostprocessor",
    "ModelLoadError",
    "ModelRuntimeError",
    "NodeAction",
    "ProtectedChatEngine",
    "ProtectedFunctionAgent",
    "ProtectedQueryEngine",
    "ProtectedReActAgent",
    "ProtectedStreamingChatResponse",
    "ProtectorError",
    "ProtectorSource",
    "ProtectorVerdictEvent",
    "build_protector",
]
