"""One protector call per batch, with a verdict event for every result (also when ``action="raise"``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from llama_index_mllm_protector.events import Target, dispatch_verdicts
from protector_models import HarmfulContentError, Pair, Protector, Result
from protector_models.config.schema import Action

METADATA_KEY = "mllm_protector"
"""Where verdicts go in node and response metadata."""


def protect(
    protector: Protector,
    pairs: Sequence[Pair],
    target: Target,
    *,
    threshold: float | None = None,
    action: Action | None = None,
    node_ids: Sequence[str | None] | None = None,
    images: Sequence[int] | None = None,
    label: Callable[[Result], str] | None = None,
) -> list[Result]:
    """``protector.protect`` plus the verdict events, dispatched in the caller's span."""
    try:
        results = protector.protect(pairs, threshold=threshold, action=action)
    except HarmfulContentError as error:
        dispatch_verdicts(error.results, target, node_ids=node_ids, images=images, label=label)
        raise
    dispatch_verdicts(results, target, node_ids=node_ids, images=images, label=label)
    return results


async def aprotect(
    protector: Protector,
    pairs: Sequence[Pair],
    target: Target,
    *,
    threshold: float | None = None,
    action: Action | None = None,
    node_ids: Sequence[str | None] | None = None,
    images: Sequence[int] | None = None,
    label: Callable[[Result], str] | None = None,
) -> list[Result]:
    """:func:`protect` with the models run in a worker thread, so the event loop stays free."""
    try:
        results = await protector.aprotect(pairs, threshold=threshold, action=action)
    except HarmfulContentError as error:
        dispatch_verdicts(error.results, target, node_ids=node_ids, images=images, label=label)
        raise
    dispatch_verdicts(results, target, node_ids=node_ids, images=images, label=label)
    return results


def verdict_metadata(result: Result, **extra: Any) -> dict[str, Any]:
    """The verdict as plain, JSON-ready metadata (the original text is left out: it may be harmful)."""
    return {
        "harm_score": result.harm_score,
        "flagged": result.flagged,
        "action": result.action,
        "categories": dict(result.categories),
        "decided_by": result.decided_by,
        "checked": result.checked,
        "changed": result.changed,
        "error": result.error,
        **extra,
    }
