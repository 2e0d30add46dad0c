"""MLLMProtectorPostprocessor: harmful retrieved nodes are dropped, redacted or annotated; benign pass."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml
from li_support import BENIGN, HARMFUL, QUESTION, BrokenDetector, ScriptedLLM, recording
from llama_index.core.schema import ImageNode, MetadataMode, NodeWithScore, QueryBundle, TextNode

from llama_index_mllm_protector import MLLMProtectorPostprocessor
from protector_models import ConfigError, HarmfulContentError, InvalidInputError, Pair, Protector
from protector_models.models.templates import detoxify_prompt

KEY = "mllm_protector"


def retrieved() -> list[NodeWithScore]:
    """Benign, harmful, benign: with distinct scores so order and scores can be checked."""
    return [
        NodeWithScore(node=TextNode(id_="a", text=BENIGN, metadata={"source": "a.txt"}), score=0.9),
        NodeWithScore(node=TextNode(id_="b", text=HARMFUL, metadata={"source": "b.txt"}), score=0.8),
        NodeWithScore(node=TextNode(id_="c", text="some music and a garden"), score=0.7),
    ]


def test_drop_removes_harmful_node_and_keeps_the_rest_in_order(protector: Protector) -> None:
    nodes = retrieved()
    kept = MLLMProtectorPostprocessor(protector, action="drop").postprocess_nodes(nodes, query_str=QUESTION)
    assert [n.node.node_id for n in kept] == ["a", "c"]
    assert [n.score for n in kept] == [0.9, 0.7]
    assert [n.node.get_content() for n in kept] == [BENIGN, "some music and a garden"]
    for scored in kept:
        verdict = scored.node.metadata[KEY]
        assert verdict["flagged"] is False
        assert verdict["action"] == "none"
        assert 0.0 <= verdict["harm_score"] < 0.5
    assert kept[0].node.metadata["source"] == "a.txt"
    assert all(KEY not in n.node.metadata for n in nodes), "the retrieved (docstore) nodes must not be mutated"


def test_redact_replaces_harmful_text_with_the_refusal(detector_config: dict) -> None:
    protector = Protector.from_config({**detector_config, "action": "refuse"})
    kept = MLLMProtectorPostprocessor(protector, action="redact").postprocess_nodes(retrieved(), query_str=QUESTION)
    assert [n.node.node_id for n in kept] == ["a", "b", "c"]
    assert [n.score for n in kept] == [0.9, 0.8, 0.7]
    assert kept[0].node.get_content() == BENIGN
    assert kept[1].node.get_content() == protector.refusal_text
    assert kept[1].node.metadata[KEY]["flagged"] is True
    assert kept[1].node.metadata[KEY]["harm_score"] >= 0.5
    assert kept[1].node.metadata[KEY]["action"] == "refuse"


def test_redact_with_detoxify_uses_the_llm_rewriter_with_the_paper_prompt(detector_config: dict) -> None:
    llm = ScriptedLLM(reply="  some cake instead  ")
    protector = Protector.from_config({**detector_config, "action": "detoxify"})
    processor = MLLMProtectorPostprocessor(protector, detoxify_llm=llm)  # detoxify -> redact
    assert processor.node_action == "redact"
    kept = processor.postprocess_nodes(retrieved(), query_str=QUESTION)
    assert kept[1].node.get_content() == "some cake instead"
    assert kept[1].node.metadata[KEY]["action"] == "detoxify"
    assert llm.prompts == [detoxify_prompt(Pair(QUESTION, HARMFUL))]
    assert kept[0].node.get_content() == BENIGN


def test_annotate_keeps_every_node_and_flags_the_harmful_one(protector: Protector) -> None:
    kept = MLLMProtectorPostprocessor(protector, action="annotate").postprocess_nodes(retrieved(), query_str=QUESTION)
    assert [n.node.get_content() for n in kept] == [BENIGN, HARMFUL, "some music and a garden"]
    assert [n.node.metadata[KEY]["flagged"] for n in kept] == [False, True, False]
    assert kept[1].node.metadata[KEY]["action"] == "annotate"


@pytest.mark.parametrize(("core", "expected"), [("pass", "annotate"), ("refuse", "redact"), ("raise", "raise")])
def test_default_action_follows_the_protector(detector_config: dict, core: str, expected: str) -> None:
    processor = MLLMProtectorPostprocessor({**detector_config, "action": core})
    assert processor.node_action == expected


def test_raise_raises_with_every_result_and_still_reports_verdicts(protector: Protector, verdicts: list) -> None:
    processor = MLLMProtectorPostprocessor(protector, action="raise")
    with pytest.raises(HarmfulContentError) as caught:
        processor.postprocess_nodes(retrieved(), query_str=QUESTION)
    assert [r.flagged for r in caught.value.results] == [False, True, False]
    assert [(e.flagged, e.action) for e in verdicts] == [(False, "none"), (True, "raise"), (False, "none")]


def test_one_batched_call_with_the_query_as_question(protector: Protector) -> None:
    recorded, detector = recording(protector)
    MLLMProtectorPostprocessor(recorded, action="drop").postprocess_nodes(
        retrieved(), query_bundle=QueryBundle(QUESTION)
    )
    assert detector.calls == [
        [Pair(QUESTION, BENIGN), Pair(QUESTION, HARMFUL), Pair(QUESTION, "some music and a garden")]
    ]


def test_without_a_query_the_question_is_empty(protector: Protector) -> None:
    recorded, detector = recording(protector)
    kept = MLLMProtectorPostprocessor(recorded, action="drop").postprocess_nodes(retrieved())
    assert {pair.question for pair in detector.calls[0]} == {""}
    assert [n.node.node_id for n in kept] == ["a", "c"]


def test_verdict_metadata_stays_out_of_llm_and_embedding_text(protector: Protector) -> None:
    kept = MLLMProtectorPostprocessor(protector, action="annotate").postprocess_nodes(retrieved(), query_str=QUESTION)
    for mode in (MetadataMode.LLM, MetadataMode.EMBED):
        content = kept[1].node.get_content(metadata_mode=mode)
        assert "source: b.txt" in content
        assert KEY not in content
        assert "harm_score" not in content
    assert KEY in kept[1].node.get_content(metadata_mode=MetadataMode.ALL)


def test_image_nodes_are_checked_by_caption_or_passed_with_a_note(protector: Protector) -> None:
    recorded, detector = recording(protector)
    nodes = [
        NodeWithScore(node=ImageNode(id_="captioned", text=HARMFUL, image_url="https://x/i.png"), score=0.5),
        NodeWithScore(node=ImageNode(id_="bare", image_url="https://x/j.png"), score=0.4),
        NodeWithScore(node=TextNode(id_="t", text=BENIGN), score=0.3),
    ]
    kept = MLLMProtectorPostprocessor(recorded, action="redact").postprocess_nodes(nodes, query_str=QUESTION)
    assert detector.calls == [[Pair(QUESTION, HARMFUL), Pair(QUESTION, BENIGN)]]
    captioned, bare, text = kept
    assert captioned.node.get_content() == protector.refusal_text
    assert isinstance(captioned.node, ImageNode)
    assert captioned.node.image_url is None, "a flagged image node loses its image with its caption"
    assert captioned.node.metadata[KEY]["image_removed"] is True
    assert nodes[0].node.image_url == "https://x/i.png"
    assert bare.node.image_url == "https://x/j.png"
    assert bare.node.metadata[KEY]["checked"] is False
    assert bare.node.metadata[KEY]["action"] == "unchecked"
    assert "image without text" in bare.node.metadata[KEY]["note"]
    assert text.node.get_content() == BENIGN


def test_every_node_verdict_is_an_event(protector: Protector, verdicts: list) -> None:
    MLLMProtectorPostprocessor(protector, action="drop").postprocess_nodes(retrieved(), query_str=QUESTION)
    assert [(e.target, e.node_id, e.flagged, e.action) for e in verdicts] == [
        ("node", "a", False, "none"),
        ("node", "b", True, "drop"),
        ("node", "c", False, "none"),
    ]
    assert verdicts[1].question == QUESTION
    assert verdicts[1].answer == HARMFUL
    assert verdicts[1].span_id is not None
    assert verdicts[1].span_id.startswith("MLLMProtectorPostprocessor.")


async def test_async_gives_the_same_nodes_and_leaves_the_loop_free(protector: Protector) -> None:
    slow, _ = recording(protector, delay=0.3)
    processor = MLLMProtectorPostprocessor(slow, action="drop")
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    kept = await processor.apostprocess_nodes(retrieved(), query_str=QUESTION)
    task.cancel()
    assert [n.node.node_id for n in kept] == ["a", "c"]
    assert ticks >= 10, "the event loop was blocked while the detector ran"


def test_empty_node_list_makes_no_detector_call(protector: Protector) -> None:
    recorded, detector = recording(protector)
    assert MLLMProtectorPostprocessor(recorded).postprocess_nodes([], query_str=QUESTION) == []
    assert detector.calls == []


def test_bad_input_gives_clear_errors(protector: Protector) -> None:
    with pytest.raises(ConfigError, match=r"action: must be one of drop, redact, annotate, raise \(got "):
        MLLMProtectorPostprocessor(protector, action="delete")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="threshold"):
        MLLMProtectorPostprocessor(protector, threshold=1.5)
    with pytest.raises(ConfigError, match="protector must be a Protector"):
        MLLMProtectorPostprocessor(42)  # type: ignore[arg-type]
    processor = MLLMProtectorPostprocessor(protector)
    with pytest.raises(InvalidInputError, match="node 0: expected a NodeWithScore"):
        processor.postprocess_nodes([TextNode(text=BENIGN)])  # type: ignore[list-item]
    with pytest.raises(InvalidInputError, match="query_str="):
        processor.postprocess_nodes(retrieved(), QUESTION)  # type: ignore[arg-type]


def test_threshold_override_changes_what_is_flagged(protector: Protector) -> None:
    kept = MLLMProtectorPostprocessor(protector, action="drop", threshold=0.0).postprocess_nodes(retrieved())
    assert kept == []


def test_built_from_the_core_yaml_and_presets(tmp_path: Path, detector_config: dict) -> None:
    path = tmp_path / "protector.yaml"
    path.write_text(yaml.safe_dump({"protector": {**detector_config, "action": "refuse"}}))
    processor = MLLMProtectorPostprocessor.from_yaml(path)
    assert processor.node_action == "redact"
    kept = processor.postprocess_nodes(retrieved(), query_str=QUESTION)
    assert kept[1].node.get_content() == processor.protector.refusal_text
    assert MLLMProtectorPostprocessor(str(path)).node_action == "redact"
    preset = MLLMProtectorPostprocessor.from_preset("paper-7b", action="drop")
    assert preset.protector.config is not None
    assert preset.protector.config.detector.score_meaning == "safe"
    with pytest.raises(ConfigError, match="unknown preset"):
        MLLMProtectorPostprocessor.from_preset("nope")


def test_a_failing_detector_is_never_silent() -> None:
    blocked = MLLMProtectorPostprocessor(Protector(BrokenDetector(), on_error="block"), action="drop")
    assert blocked.postprocess_nodes(retrieved(), query_str=QUESTION) == []
    passed = MLLMProtectorPostprocessor(Protector(BrokenDetector(), on_error="pass"), action="drop")
    kept = passed.postprocess_nodes(retrieved(), query_str=QUESTION)
    assert [n.node.get_content() for n in kept] == [BENIGN, HARMFUL, "some music and a garden"]
    assert {n.node.metadata[KEY]["action"] for n in kept} == {"unchecked"}
    assert "CUDA out of memory" in kept[1].node.metadata[KEY]["error"]
