"""Fail at import, with the command that installs it, when the framework this adapter needs is missing."""

from importlib.util import find_spec

if find_spec("langchain_core") is None:
    raise ImportError(
        "langchain_mllm_protector needs langchain-core, which is not installed: pip install 'langchain-core>=1.0,<2' "
        "(or, in a clone of mllm-protector, pip install '.[langchain]')"
    )
