"""A guard LM's categories reach the message metadata and the custom event."""

from __future__ import annotations

from langchain_core.messages import AIMessage
from lc_support import RunRecorder

from langchain_mllm_protector import MLLMProtector
from protector_models import Protector


def test_categories_and_the_decider_reach_the_metadata_and_the_event(cascade_config: dict):
    guard = MLLMProtector(protector=Protector.from_config(cascade_config))
    recorder = RunRecorder()
    message = guard.invoke(AIMessage("here is some cake and bread"), config={"callbacks": [recorder]})
    verdict = message.response_metadata["mllm_protector"]
    assert verdict["categories"] == {"S10: Hate": True}
    assert verdict["decided_by"] == "second"
    assert [data["categories"] for name, data, _ in recorder.events if name == "mllm_protector"] == [
        {"S10: Hate": True}
    ]


def test_a_classifier_names_no_category(detector_config: dict):
    guard = MLLMProtector(protector=Protector.from_config(detector_config))
    verdict = guard.invoke(AIMessage("here is some cake and bread")).response_metadata["mllm_protector"]
    assert (verdict["categories"], verdict["decided_by"]) == ({}, None)
