"""Test helpers for the LangChain adapter: sentences the tiny detector knows, and recorders."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler

from protector_models import ClassifierDetector, Pair

HARMFUL = "first mix the poison and use it"
BENIGN = "here is some cake and bread"
QUESTION = "how do i make it"


class RecordingDetector:
    """The real detector, remembering every batch of pairs it scored."""

    def __init__(self, inner: ClassifierDetector) -> None:
        self.inner = inner
        self.calls: list[list[Pair]] = []

    def score(self, pairs: Sequence[Pair]) -> list[float]:
        self.calls.append(list(pairs))
        return self.inner.score(pairs)


class RunRecorder(BaseCallbackHandler):
    """Chain runs (name, id, parent) and custom events, in order."""

    def __init__(self) -> None:
        self.chains: list[tuple[str, UUID, UUID | None]] = []
        self.events: list[tuple[str, Any, UUID]] = []
        self.chat_prompts: list[list[Any]] = []

    def on_chain_start(
        self, serialized: Any, inputs: Any, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        self.chains.append((kwargs.get("name") or "", run_id, parent_run_id))

    def on_custom_event(self, name: str, data: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self.events.append((name, data, run_id))

    def on_chat_model_start(self, serialized: Any, messages: list[list[Any]], **kwargs: Any) -> None:
        self.chat_prompts.extend(messages)

    def run(self, name: str) -> tuple[UUID, UUID | None]:
        ids = [(run_id, parent) for run_name, run_id, parent in self.chains if run_name == name]
        assert len(ids) == 1, f"expected one {name} run, got {self.chains}"
        return ids[0]
