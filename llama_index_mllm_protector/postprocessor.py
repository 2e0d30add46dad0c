"""``MLLMProtectorPostprocessor``: screens retrieved nodes before they reach the LLM."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Self

from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.llms import LLM
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import NodeWithScore, QueryBundle

from llama_index_mllm_protector.building import ProtectorSource, build_protector
from llama_index_mllm_protector.events import dispatch_verdicts
from llama_index_mllm_protector.guarding import METADATA_KEY, aprotect, protect, verdict_metadata
from llama_index_mllm_protector.nodes import IMAGE_ONLY_NOTE, annotated, has_image, node_text
from protector_models import ConfigError, InvalidInputError, Pair, Protector, ProtectorConfig, Result
from protector_models.config.schema import Action, check_threshold

NodeAction = Literal["drop", "redact", "annotate", "raise"]
_NODE_ACTIONS = ("drop", "redact", "annotate", "raise")
_FROM_CORE: dict[str, NodeAction] = {
    "pass": "annotate",
    "refuse": "redact",
    "detoxify": "redact",
    "raise": "raise",
}


class MLLMProtectorPostprocessor(BaseNodePostprocessor):
    """Scores every retrieved node's text against the query in one protector call; acts on the harmful ones.

    ``action`` (what happens to a flagged node):

    - ``drop``: removed from the results;
    - ``redact``: its text replaced by the protector's output (the refusal, or the detoxified text when the
      protector's action is ``detoxify``); a flagged image node also loses its image;
    - ``annotate``: kept unchanged, flagged in metadata;
    - ``raise``: :class:`~protector_models.HarmfulContentError` (its ``.results`` hold every verdict);
    - ``None`` (default): follow the protector's action: pass → annotate, refuse and detoxify → redact,
      raise → raise.

    Every returned node is a copy carrying its verdict under ``metadata["mllm_protector"]`` (excluded from
    the LLM and embedding text); order and retrieval scores are kept and benign text is never touched. Image
    nodes are checked through their text (caption); one without text passes, marked unchecked. Without a
    query the question is empty, and the nodes are judged on their own.
    """

    action: NodeAction | None = Field(default=None, description="What to do with a flagged node.")
    threshold: float | None = Field(default=None, description="Overrides the protector's threshold.")
    metadata_key: str = Field(default=METADATA_KEY, description="Node metadata key of the verdict.")
    _protector: Protector = PrivateAttr()

    def __init__(
        self,
        protector: ProtectorSource = None,
        *,
        action: NodeAction | None = None,
        threshold: float | None = None,
        detoxify_llm: LLM | None = None,
        metadata_key: str = METADATA_KEY,
        **kwargs: Any,
    ) -> None:
        if action is not None and action not in _NODE_ACTIONS:
            raise ConfigError(f"action: must be one of {', '.join(_NODE_ACTIONS)} (got {action!r})")
        super().__init__(action=action, threshold=check_threshold(threshold), metadata_key=metadata_key, **kwargs)
        self._protector = build_protector(protector, detoxify_llm=detoxify_llm)

    @classmethod
    def class_name(cls) -> str:
        """Class name."""
        return "MLLMProtectorPostprocessor"

    @classmethod
    def from_config(cls, config: ProtectorConfig | Mapping[str, Any] | str | Path, **kwargs: Any) -> Self:
        """Build from a config object, a dict, a YAML path or a preset name (as ``Protector.from_config``)."""
        return cls(Protector.from_config(config), **kwargs)

    @classmethod
    def from_yaml(cls, path: str | Path, **kwargs: Any) -> Self:
        """Build from the same YAML file as the core protector."""
        return cls(Protector.from_yaml(path), **kwargs)

    @classmethod
    def from_preset(cls, name: str, **kwargs: Any) -> Self:
        """Build from a named preset (``default``, ``paper-7b``, ...)."""
        return cls(Protector.from_preset(name), **kwargs)

    @property
    def protector(self) -> Protector:
        """The protector doing the scoring."""
        return self._protector

    @property
    def node_action(self) -> NodeAction:
        """The effective action on flagged nodes."""
        return self.action or _FROM_CORE[self._protector.action]

    def _postprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        question, checked = _to_check(nodes, query_bundle)
        results = []
        if checked:
            results = protect(
                self._protector,
                [Pair(question, text) for _, text in checked],
                "node",
                threshold=self.threshold,
                action=self._core_action(),
                node_ids=[nodes[i].node.node_id for i, _ in checked],
                label=self._label,
            )
        return self._apply(nodes, question, checked, results)

    async def _apostprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        question, checked = _to_check(nodes, query_bundle)
        results = []
        if checked:
            results = await aprotect(
                self._protector,
                [Pair(question, text) for _, text in checked],
                "node",
                threshold=self.threshold,
                action=self._core_action(),
                node_ids=[nodes[i].node.node_id for i, _ in checked],
                label=self._label,
            )
        return self._apply(nodes, question, checked, results)

    def _label(self, result: Result) -> str:
        """The action an event reports: ``drop`` or ``raise`` when that is what befalls the node."""
        if not result.flagged:
            return result.action
        if self.node_action == "drop" or (self.node_action == "raise" and not result.checked):
            return "drop"  # under "raise", a node withheld by on_error="block" is dropped
        return "raise" if self.node_action == "raise" else result.action

    def _core_action(self) -> Action:
        """The core action that produces what the node action needs (no rewriting unless redacting)."""
        node_action = self.node_action
        if node_action == "raise":
            return "raise"
        if node_action == "redact":
            return "detoxify" if self._protector.action == "detoxify" else "refuse"
        return "pass"

    def _apply(
        self,
        nodes: list[NodeWithScore],
        question: str,
        checked: list[tuple[int, str]],
        results: Sequence[Result],
    ) -> list[NodeWithScore]:
        by_index = {index: result for (index, _), result in zip(checked, results, strict=True)}
        unchecked = [i for i in range(len(nodes)) if i not in by_index]
        if unchecked:
            dispatch_verdicts(
                [Result(question, "", "", None, False, "unchecked", checked=False) for _ in unchecked],
                "node",
                node_ids=[nodes[i].node.node_id for i in unchecked],
                images=[1] * len(unchecked),
            )
        kept = []
        for index, scored in enumerate(nodes):
            result = by_index.get(index)
            if result is None:
                verdict = {"harm_score": None, "flagged": False, "action": "unchecked", "checked": False}
                kept.append(annotated(scored, self.metadata_key, {**verdict, "note": IMAGE_ONLY_NOTE}))
            elif not result.flagged or self.node_action == "annotate":
                kept.append(annotated(scored, self.metadata_key, verdict_metadata(result)))
            elif self.node_action == "redact":
                image = has_image(scored.node)
                verdict = verdict_metadata(result, **({"image_removed": True} if image else {}))
                kept.append(annotated(scored, self.metadata_key, verdict, text=result.output, drop_image=image))
            # otherwise dropped: action "drop", or a node withheld by on_error="block" under "raise"
        return kept


def _to_check(nodes: list[NodeWithScore], query_bundle: QueryBundle | None) -> tuple[str, list[tuple[int, str]]]:
    """The question, and (position, text) of each node with text to check."""
    if query_bundle is not None and not isinstance(query_bundle, QueryBundle):
        raise InvalidInputError(
            f"query_bundle must be a QueryBundle, got {type(query_bundle).__name__}; "
            "pass a string as postprocess_nodes(nodes, query_str=...)"
        )
    for index, scored in enumerate(nodes):
        if not isinstance(scored, NodeWithScore):
            raise InvalidInputError(
                f"node {index}: expected a NodeWithScore (wrap a node as NodeWithScore(node=node)), "
                f"got {type(scored).__name__}"
            )
    question = query_bundle.query_str if query_bundle is not None else ""
    checked = [(index, text) for index, scored in enumerate(nodes) if (text := node_text(scored.node)) is not None]
    return question, checked
