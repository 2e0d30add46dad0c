"""Reading a retrieved node's text and writing a verdict back into a copy of it."""

from __future__ import annotations

from typing import Any

from llama_index.core.schema import BaseNode, ImageNode, MetadataMode, Node, NodeWithScore

IMAGE_ONLY_NOTE = "image without text: the detector reads text, so the node was passed on unchecked"


def node_text(node: BaseNode) -> str | None:
    """The text to check, or None for an image node with no text (caption) to check."""
    text = node.get_content(metadata_mode=MetadataMode.NONE) or ""
    if not text.strip() and has_image(node):
        return None
    return text


def has_image(node: BaseNode) -> bool:
    """Whether the node carries an image (``ImageNode`` or a ``Node`` with an image resource)."""
    if isinstance(node, ImageNode):
        return bool(node.image or node.image_path or node.image_url)
    return isinstance(node, Node) and node.image_resource is not None


def annotated(
    scored: NodeWithScore,
    key: str,
    verdict: dict[str, Any],
    *,
    text: str | None = None,
    drop_image: bool = False,
) -> NodeWithScore:
    """A copy of ``scored`` with ``verdict`` under ``metadata[key]``, kept out of LLM and embedding text.

    ``text`` replaces the node's text; ``drop_image`` removes its image. The retrieval score is kept, and the
    original node (often shared with the docstore) is left untouched.
    """
    node = scored.node
    update: dict[str, Any] = {
        "metadata": {**node.metadata, key: verdict},
        "excluded_llm_metadata_keys": _with(node.excluded_llm_metadata_keys, key),
        "excluded_embed_metadata_keys": _with(node.excluded_embed_metadata_keys, key),
    }
    if drop_image and isinstance(node, ImageNode):
        update.update(image=None, image_path=None, image_url=None, image_mimetype=None)
    elif drop_image and isinstance(node, Node):
        update["image_resource"] = None
    copy = node.model_copy(update=update)
    if text is not None:
        copy.set_content(text)
    return NodeWithScore(node=copy, score=scored.score)


def _with(keys: list[str], key: str) -> list[str]:
    return keys if key in keys else [*keys, key]
