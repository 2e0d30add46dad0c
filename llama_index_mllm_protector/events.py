"""Instrumentation: one :class:`ProtectorVerdictEvent` per checked text, through LlamaIndex's dispatcher."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.events import BaseEvent
from pydantic import Field

from protector_models import Result

dispatcher = get_dispatcher(__name__)

Target = Literal["node", "response"]


class ProtectorVerdictEvent(BaseEvent):
    """The protector's verdict on one retrieved node or one final answer.

    ``answer`` is the text that was checked and ``output`` what was passed on (equal unless it was replaced);
    ``action`` is what happened to it (the result's action, or ``drop`` for a node the postprocessor dropped);
    ``categories`` are those a guard LM named (empty for a classifier), ``decided_by`` a cascade's deciding detector.
    The event carries the span id of the LlamaIndex span it was dispatched in (a query, a chat turn, a
    postprocessor run), so handlers can tie it to the rest of the trace.
    """

    target: Target
    question: str
    answer: str
    output: str
    harm_score: float | None
    flagged: bool
    action: str
    checked: bool
    error: str | None = None
    categories: dict[str, bool | float] = Field(default_factory=dict)
    decided_by: str | None = None
    node_id: str | None = None
    images: int = 0

    @classmethod
    def class_name(cls) -> str:
        """Class name."""
        return "ProtectorVerdictEvent"


def dispatch_verdicts(
    results: Sequence[Result],
    target: Target,
    *,
    node_ids: Sequence[str | None] | None = None,
    images: Sequence[int] | None = None,
    label: Callable[[Result], str] | None = None,
) -> None:
    """Dispatch one event per result, in order, in the current span; ``label`` names the action taken."""
    for index, result in enumerate(results):
        dispatcher.event(
            ProtectorVerdictEvent(
                target=target,
                question=result.question,
                answer=result.original,
                output=result.output,
                harm_score=result.harm_score,
                flagged=result.flagged,
                action=label(result) if label else result.action,
                checked=result.checked,
                error=result.error,
                categories=dict(result.categories),
                decided_by=result.decided_by,
                node_id=node_ids[index] if node_ids else None,
                images=images[index] if images else 0,
            )
        )
