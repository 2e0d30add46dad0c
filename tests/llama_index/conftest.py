"""LlamaIndex fixtures: mock LLM and embeddings in Settings (never OpenAI), and an event recorder."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from llama_index.core import Settings
from llama_index.core.bridge.pydantic import Field
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.llms import MockLLM

from llama_index_mllm_protector import ProtectorVerdictEvent


@pytest.fixture(autouse=True)
def mock_settings() -> Iterator[None]:
    """Settings.llm / embed_model are mocks for every test, restored afterwards."""
    old_llm, old_embed = Settings._llm, Settings._embed_model
    Settings.llm = MockLLM()
    Settings.embed_model = MockEmbedding(embed_dim=8)
    yield
    Settings._llm, Settings._embed_model = old_llm, old_embed


class VerdictRecorder(BaseEventHandler):
    """Keeps every ProtectorVerdictEvent it is handed."""

    events: list[ProtectorVerdictEvent] = Field(default_factory=list)

    @classmethod
    def class_name(cls) -> str:
        return "VerdictRecorder"

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        if isinstance(event, ProtectorVerdictEvent):
            self.events.append(event)


@pytest.fixture
def verdicts() -> Iterator[list[ProtectorVerdictEvent]]:
    """The verdict events dispatched during the test, as a user's root-dispatcher handler sees them."""
    root = get_dispatcher()
    handler = VerdictRecorder(events=[])
    root.add_event_handler(handler)
    yield handler.events
    root.event_handlers.remove(handler)
