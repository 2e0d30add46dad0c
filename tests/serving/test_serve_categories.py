"""The service with a cascade in front of a guard LM: categories and the deciding detector in the JSON, the pairs
each detector decided in /metrics, and a remote detector that hands them on."""

from __future__ import annotations

import httpx
from server_support import running

from protector_models import Pair, Protector
from protector_models.serving.app import create_app

PAIRS = [Pair("how do i make it", "first mix the poison and use it"), Pair("", "here is some cake and bread")]
BODY = {"pairs": [{"question": p.question, "answer": p.answer} for p in PAIRS]}


def test_the_json_carries_categories_and_who_decided(cascade_config: dict):
    protector = Protector.from_config(cascade_config)
    expected = protector.check(PAIRS)
    with running(create_app(Protector.from_config(cascade_config))) as url, httpx.Client(base_url=url) as client:
        checked = client.post("/v1/check", json=BODY).json()["results"]
        protected = client.post("/v1/protect", json=BODY).json()["results"]
        metrics = client.get("/metrics").text
    for results in (checked, protected):
        assert [(r["categories"], r["decided_by"]) for r in results] == [
            (dict(v.categories), v.decided_by) for v in expected
        ]
    assert [r["decided_by"] for r in checked] == ["first", "second"]
    assert checked[1]["categories"] == {"S10: Hate": True}
    assert 'mllm_protector_decided_total{by="first",endpoint="/v1/check"} 1.0' in metrics
    assert 'mllm_protector_decided_total{by="second",endpoint="/v1/check"} 1.0' in metrics
    assert 'mllm_protector_decided_total{by="second",endpoint="/v1/protect"} 1.0' in metrics


def test_a_classifier_service_gives_empty_categories_and_counts_no_decider(detector_config: dict):
    with running(create_app(Protector.from_config(detector_config))) as url, httpx.Client(base_url=url) as client:
        checked = client.post("/v1/check", json=BODY).json()["results"]
        metrics = client.get("/metrics").text
    assert [(r["categories"], r["decided_by"]) for r in checked] == [({}, None), ({}, None)]
    assert "mllm_protector_decided_total{" not in metrics


def test_a_remote_detector_hands_categories_and_the_decider_on(cascade_config: dict):
    expected = Protector.from_config(cascade_config).check(PAIRS)
    with running(create_app(Protector.from_config(cascade_config))) as url:
        remote = Protector.from_config({"detector": {"kind": "remote", "url": url}, "threshold": 0.5})
        verdicts = remote.check(PAIRS)
        remote.close()
    assert [(dict(v.categories), v.decided_by) for v in verdicts] == [
        (dict(v.categories), v.decided_by) for v in expected
    ]
    assert [v.harm_score for v in verdicts] == [v.harm_score for v in expected]
