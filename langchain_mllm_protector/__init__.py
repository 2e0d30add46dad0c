"""LangChain adapter for mllm-protector: guard chat model answers in chains and agents.

>>> from langchain_mllm_protector import MLLMProtector
>>> chain = prompt | chat_model | MLLMProtector()  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import langchain_mllm_protector._installed  # noqa: F401 (first: a missing framework is named with its install command)
from langchain_mllm_protector.chat_model import ProtectedChatModel
from langchain_mllm_protector.rewriter import ChatModelRewriter
from langchain_mllm_protector.runnable import UNCHECKED_TAG, MLLMProtector
from langchain_mllm_protector.settings import LangChainSettings
from protector_models.errors import (
    ConfigError,
    HarmfulContentError,
    InvalidInputError,
    ModelLoadError,
    ModelRuntimeError,
    ProtectorError,
)

if TYPE_CHECKING:
    from langchain_mllm_protector.middleware import MLLMProtectorMiddleware

__all__ = [
    "UNCHECKED_TAG",
    "ChatModelRewriter",
    "ConfigError",
    "HarmfulContentError",
    "InvalidInputError",
    "LangChainSettings",
    "MLLMProtector",
    "MLLMProtectorMiddleware",
    "ModelLoadError",
    "ModelRuntimeError",
    "ProtectedChatModel",
    "ProtectorError",
]


def __getattr__(name: str) -> Any:
    """Import the agent middleware on first use: it needs the optional `langchain` package."""
    if name == "MLLMProtectorMiddleware":
        from langchain_mllm_protector.middleware import MLLMProtectorMiddleware

        return MLLMProtectorMiddleware
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
