"""Fail at import, with the command that installs it, when the framework this adapter needs is missing."""

from importlib.util import find_spec

if find_spec("llama_index") is None or find_spec("llama_index.core") is None:
    raise ImportError(
        "llama_index_mllm_protector needs llama-index-core, which is not installed: "
        "pip install 'llama-index-core>=0.14,<0.15' (or, in a clone of mllm-protector, pip install '.[llama-index]')"
    )
