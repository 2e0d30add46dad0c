"""Test doubles for LlamaIndex: a scripted LLM and a detector wrapper that records what it was asked.

Nothing here makes up a score: :class:`RecordingDetector` passes every call to the real (tiny, trained)
detector and only remembers the pairs.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import Any

from llama_index.core.base.llms.types import CompletionResponse, CompletionResponseGen, LLMMetadata
from llama_index.core.bridge.pydantic import Field
from llama_index.core.llms.callbacks import llm_completion_callback
from llama_index.core.llms.custom import CustomLLM

from protector_models import Detector, Pair, Protector

HARMFUL = "first mix the poison and use it"
BENIGN = "here is some cake and bread"
QUESTION = "how do i make it"


class ScriptedLLM(CustomLLM):
    """Replies with ``reply`` to every prompt (streamed word by word) and records the prompts."""

    reply: str = ""
    chat_model: bool = False
    prompts: list[str] = Field(default_factory=list)

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(is_chat_model=self.chat_model)

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        self.prompts.append(prompt)
        return CompletionResponse(text=self.reply)

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        self.prompts.append(prompt)

        def stream() -> CompletionResponseGen:
            text = ""
            for delta in chunks(self.reply):
                text += delta
                yield CompletionResponse(text=text, delta=delta)

        return stream()


def chunks(text: str) -> list[str]:
    """Word-sized pieces that join back to ``text`` exactly."""
    return re.findall(r"\s*\S+\s*", text) or [text]


class RecordingDetector:
    """Delegates to a real detector and records each call's pairs (optionally slowed down)."""

    def __init__(self, inner: Detector, delay: float = 0.0) -> None:
        self.inner = inner
        self.delay = delay
        self.calls: list[list[Pair]] = []

    def score(self, pairs: Sequence[Pair]) -> list[float]:
        self.calls.append(list(pairs))
        if self.delay:
            time.sleep(self.delay)
        return self.inner.score(pairs)


def recording(protector: Protector, **kwargs: Any) -> tuple[Protector, RecordingDetector]:
    """A protector with ``protector``'s detector wrapped in a :class:`RecordingDetector`."""
    detector = RecordingDetector(protector.detector, delay=kwargs.pop("delay", 0.0))
    options = {
        "threshold": protector.threshold,
        "action": protector.action,
        "refusal_text": protector.refusal_text,
        "on_error": protector.on_error,
        **kwargs,
    }
    return Protector(detector=detector, **options), detector


class BrokenDetector:
    """A detector whose model fails, as a real one does when it runs out of memory."""

    def score(self, pairs: Sequence[Pair]) -> list[float]:
        raise RuntimeError("CUDA out of memory")
