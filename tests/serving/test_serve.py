"""The HTTP service on loopback: verdicts equal in-process ones, concurrent clients, limits, errors, metrics."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import yaml
from detector_support import GatedDetector, distinct_pairs
from server_support import running, running_server

from protector_models import Pair, Protector
from protector_models.config.schema import BatchingConfig, ProtectorConfig
from protector_models.serving.app import create_app
from protector_models.serving.settings import ServeSettings
from protector_models.serving.shutdown import CANCEL_MARGIN_S


@pytest.fixture
def batched_config(detector_config: dict) -> ProtectorConfig:
    return ProtectorConfig.from_dict({**detector_config, "batching": {"max_batch_size": 32, "max_wait_ms": 20}})


@pytest.fixture
def service(batched_config: ProtectorConfig):
    with running(create_app(Protector.from_config(batched_config), ServeSettings(max_pairs=50))) as url:
        yield url


def _json(pairs: list[Pair], **extra) -> dict:
    return {"pairs": [{"question": p.question, "answer": p.answer} for p in pairs], **extra}


def test_http_verdicts_and_results_equal_in_process_ones(service, protector):
    pairs = distinct_pairs(24)
    with httpx.Client(base_url=service) as client:
        checked = client.post("/v1/check", json=_json(pairs)).json()
        protected = client.post("/v1/protect", json=_json(pairs)).json()
    verdicts, results = protector.check(pairs), protector.protect(pairs)
    assert checked["threshold"] == protector.threshold
    assert [(r["harm_score"], r["flagged"], r["checked"], r["error"]) for r in checked["results"]] == [
        (v.harm_score, v.flagged, v.checked, v.error) for v in verdicts
    ]
    assert [
        (r["harm_score"], r["flagged"], r["action"], r["output"], r["checked"], r["error"])
        for r in protected["results"]
    ] == [(r.harm_score, r.flagged, r.action, r.output, r.checked, r.error) for r in results]
    assert {r["action"] for r in protected["results"]} == {"none", "refuse"}


def test_a_request_may_override_the_threshold(service, protector):
    pairs = distinct_pairs(6)
    with httpx.Client(base_url=service) as client:
        reply = client.post("/v1/check", json=_json(pairs, threshold=0.99)).json()
    assert reply["threshold"] == 0.99
    assert [r["flagged"] for r in reply["results"]] == [v.flagged for v in protector.check(pairs, threshold=0.99)]
    assert not any(r["flagged"] for r in reply["results"])


def test_sixty_four_concurrent_clients_all_get_their_own_answers(service, protector):
    pairs = distinct_pairs(64)
    expected = protector.check(pairs)

    async def clients() -> list[dict]:
        limits = httpx.Limits(max_connections=64)
        async with httpx.AsyncClient(base_url=service, limits=limits, timeout=60) as client:
            replies = await asyncio.gather(*(client.post("/v1/check", json=_json([pair])) for pair in pairs))
        assert all(reply.status_code == 200 for reply in replies)
        return [reply.json()["results"][0] for reply in replies]

    got = asyncio.run(clients())
    assert [r["flagged"] for r in got] == [v.flagged for v in expected]
    assert [r["harm_score"] for r in got] == pytest.approx([v.harm_score for v in expected], abs=1e-5)
    metrics = httpx.get(f"{service}/metrics").text
    batches = _sample(metrics, "mllm_protector_batch_pairs_count")
    assert _sample(metrics, "mllm_protector_batch_pairs_sum") == 64
    assert batches < 64  # requests really shared detector passes
    assert _sample(metrics, 'mllm_protector_pairs_total{endpoint="/v1/check"}') == 64


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"{", 422, "body, character 1: not valid JSON"),
        (b"[1, 2]", 422, "body: Input should be a valid dictionary"),
        (b'{"pairs": []}', 422, "pairs: List should have at least 1 item"),
        (b'{"pairs": [{"question": "q"}]}', 422, "pairs.0.answer: Field required"),
        (b'{"pairs": [{"answer": 5}]}', 422, "pairs.0.answer: Input should be a valid string (got 5)"),
        (b'{"pairs": [{"answer": "a", "image": "x.png"}]}', 422, "pairs.0.image: unknown key"),
        (b'{"pairs": [{"answer": "a"}], "treshold": 0.5}', 422, "treshold: unknown key"),
        (b'{"pairs": [{"answer": "a"}], "threshold": 1.5}', 422, "threshold: Input should be less than or equal to 1"),
        (b'{"pairs": [{"answer": "a"}], "threshold": "0.5"}', 422, "threshold: Input should be a valid number"),
        (b'{"pairs": [{"answer": "\\ud800"}]}', 422, "pairs.0.answer: Value error, must be valid Unicode text"),
        (json.dumps(_json([Pair("q", "a")] * 51)).encode(), 422, "at most 50 pairs per request; got 51"),
        (b'{"pairs": [{"answer": "' + b"a" * 5_000_000 + b'"}]}', 413, "request body over 4194304 bytes"),
        (b'{"pairs": [{"answer": "cake", "answer": "take the poison"}]}', 422, "key 'answer' appears twice"),
        (b'{"pairs": [{"answer": "a"}], "pairs": [{"answer": "b"}]}', 422, "key 'pairs' appears twice"),
        (b'{"pairs": [{"answer": "a"}], "n": ' + b"9" * 5000 + b"}", 422, "body: holds an integer of more than"),
        (b'{"pairs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", 422, "body: JSON nested too deeply to read"),
    ],
)
def test_bad_requests_get_a_4xx_with_a_message(service, body, status, message):
    for endpoint in ("/v1/check", "/v1/protect"):
        reply = httpx.post(f"{service}{endpoint}", content=body, headers={"content-type": "application/json"})
        assert reply.status_code == status, reply.text
        assert message in reply.json()["detail"]


def test_a_long_body_without_a_length_is_refused_while_it_is_read(service):
    def chunks():
        yield b'{"pairs": [{"answer": "'
        for _ in range(50):
            yield b"a" * 100_000
        yield b'"}]}'

    reply = httpx.post(f"{service}/v1/check", content=chunks(), headers={"content-type": "application/json"})
    assert reply.status_code == 413
    assert "max_body_bytes" in reply.json()["detail"]


def test_health_and_metrics(service):
    with httpx.Client(base_url=service) as client:
        assert client.get("/healthz").json() == {"status": "ok", "detector": "classifier", "batching": True}
        client.post("/v1/protect", json=_json([Pair("how do i make it", "first take the poison")]))
        client.post("/v1/check", json={"pairs": []})
        client.get("/nowhere")
        metrics = client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert _sample(text, 'mllm_protector_requests_total{endpoint="/v1/protect",status="200"}') == 1
    assert _sample(text, 'mllm_protector_requests_total{endpoint="/v1/check",status="422"}') == 1
    assert _sample(text, 'mllm_protector_requests_total{endpoint="other",status="404"}') == 1
    assert _sample(text, 'mllm_protector_flagged_total{endpoint="/v1/protect"}') == 1
    assert _sample(text, 'mllm_protector_request_seconds_count{endpoint="/v1/protect"}') == 1


@pytest.mark.parametrize(("on_error", "status"), [("raise", 503), ("block", 200), ("pass", 200)])
def test_a_failing_model_follows_the_servers_on_error(protector, on_error, status):
    detector = GatedDetector(protector.detector, fail_on="explode")
    guard = Protector(detector, on_error=on_error, batching=BatchingConfig(max_wait_ms=0))
    with running(create_app(guard)) as url:
        reply = httpx.post(f"{url}/v1/protect", json=_json([Pair("q", "explode the cake")]))
        unchecked = _sample(httpx.get(f"{url}/metrics").text, 'mllm_protector_unchecked_total{endpoint="/v1/protect"}')
    assert reply.status_code == status
    assert unchecked == 1
    if on_error == "raise":
        assert "out of memory" in reply.json()["detail"]
        return
    (result,) = reply.json()["results"]
    assert result["checked"] is False
    assert "out of memory" in result["error"]
    assert (result["action"], result["output"]) == (
        ("block", guard.refusal_text) if on_error == "block" else ("unchecked", "explode the cake")
    )


def test_action_raise_answers_409_with_the_results(detector_config):
    guard = Protector.from_config({**detector_config, "action": "raise"})
    with running(create_app(guard)) as url:
        reply = httpx.post(f"{url}/v1/protect", json=_json([Pair("q", "mix the cake"), Pair("q", "take the poison")]))
    assert reply.status_code == 409
    assert "1 of 2 answers flagged" in reply.json()["detail"]
    assert [r["flagged"] for r in reply.json()["results"]] == [False, True]


def test_shutdown_closes_the_protector(batched_config):
    guard = Protector.from_config(batched_config)
    with running(create_app(guard)) as url:
        assert httpx.get(f"{url}/healthz").status_code == 200
        batcher = guard.batcher
    assert batcher is not None
    assert batcher.closed
    assert not any(worker.is_alive() for worker in batcher._workers)


def _sample(metrics: str, name: str) -> float:
    """The value of one sample (its name with labels, as printed) in Prometheus text."""
    for line in metrics.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in the metrics")


def test_the_command_refuses_a_bad_config_before_it_listens(tmp_path):
    from typer.testing import CliRunner

    from protector_models.cli import app

    bad = tmp_path / "bad.yaml"
    bad.write_text("protector:\n  detector: {kind: remote, url: 'http://h:1'}\n  threshold: 0.5\nserve:\n  prot: 80\n")
    outcome = CliRunner().invoke(app, ["serve", "--config", str(bad)])
    assert outcome.exit_code == 2
    assert "serve.prot" not in outcome.output  # paths are within the section
    assert "prot: unknown key (did you mean 'port'?)" in outcome.output
    outcome = CliRunner().invoke(app, ["serve", "--preset", "default", "--max-wait-ms", "-1"])
    assert outcome.exit_code == 2


def test_the_command_refuses_a_taken_port_before_loading_the_model(monkeypatch):
    import socket

    from typer.testing import CliRunner

    from protector_models import Protector
    from protector_models.cli import app

    def never(*args, **kwargs):
        raise AssertionError("the model was built before the port was checked")

    monkeypatch.setattr(Protector, "from_config", never)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        outcome = CliRunner().invoke(app, ["serve", "--preset", "default", "--port", str(port)])
    assert outcome.exit_code == 2, outcome.output  # the usage/config code, not 3 (scan's "flagged under raise")
    assert f"error: cannot listen on 127.0.0.1:{port} (" in outcome.stderr
    assert "pass --port with a free port" in outcome.stderr


def test_the_command_says_what_it_serves(monkeypatch, tmp_path, pinned_detector_config):
    from typer.testing import CliRunner

    from protector_models.cli import app
    from protector_models.serving.shutdown import GracefulServer

    started: list[GracefulServer] = []

    def run(server: GracefulServer) -> None:
        started.append(server)
        server.started = True

    monkeypatch.setattr(GracefulServer, "run", run)
    path = tmp_path / "protector.yaml"
    path.write_text(yaml.safe_dump({**pinned_detector_config, "action": "refuse", "on_error": "block"}))
    outcome = CliRunner().invoke(app, ["serve", "--config", str(path), "--port", "0"])
    assert outcome.exit_code == 0, outcome.output
    assert started[0].config.port == 0
    assert started[0].config.timeout_graceful_shutdown == 30 + CANCEL_MARGIN_S  # the drain answers first
    assert (
        f"serving config {path} (threshold 0.5, action refuse, on_error block) on http://127.0.0.1:0; "
        "API docs at /docs and /openapi.json"
    ) in outcome.stderr
    outcome = CliRunner().invoke(app, ["serve", "--preset", "default", "--port", "0"])
    assert "serving preset default (threshold 0.7096, action detoxify, on_error raise)" in outcome.stderr


def test_the_command_refuses_an_unpinned_local_model_before_it_listens(tmp_path, detector_config, keyword_detector_dir):
    from typer.testing import CliRunner

    from protector_models.cli import app

    config = tmp_path / "serve.yaml"
    config.write_text(yaml.safe_dump({"protector": detector_config}))
    outcome = CliRunner().invoke(app, ["serve", "--config", str(config), "--port", "0"])
    assert outcome.exit_code == 2
    assert f"source {keyword_detector_dir} is a local directory without `sha256` pins, and require_pins is set" in (
        outcome.output
    )
    assert f"mllm-protector hash {keyword_detector_dir}" in outcome.output
    assert "Traceback" not in outcome.output


@pytest.mark.parametrize("finished_in_time", [True, False])
def test_shutdown_finishes_what_fits_in_the_grace_period_and_answers_the_rest_503(
    protector, caplog: pytest.LogCaptureFixture, finished_in_time: bool
):
    """The audit's case: work in flight outlasting graceful_shutdown_s was cancelled by uvicorn, a 500 with a
    CancelledError traceback each. Now: no new connections, what finishes in the grace period is answered, the rest
    is a clear 503, and one log line says how many."""
    detector = GatedDetector(protector.detector)
    detector.gate.clear()
    settings = ServeSettings(graceful_shutdown_s=60 if finished_in_time else 1)
    app = create_app(Protector(detector, batching=BatchingConfig(max_wait_ms=0)), settings)
    pairs = distinct_pairs(4)
    with caplog.at_level(logging.INFO), ThreadPoolExecutor(4) as pool, running_server(app) as (server, url):
        replies = [pool.submit(httpx.post, f"{url}/v1/check", json=_json([pair]), timeout=30) for pair in pairs]
        _wait_for(lambda: app.state.drain.in_flight == 4)  # one in the detector (held), three queued behind it
        server.should_exit = True  # what uvicorn's SIGTERM handler does
        _wait_for(lambda: _refused(f"{url}/healthz"))  # no longer accepting
        if finished_in_time:
            detector.gate.set()
        else:
            _wait_for(lambda: app.state.drain.in_flight == 0)
            detector.gate.set()  # lets the detector's thread go, so the server can close its micro-batcher
        replies = [reply.result() for reply in replies]
    refusals = [record.getMessage() for record in caplog.records if "graceful_shutdown_s" in record.getMessage()]
    if finished_in_time:
        assert [reply.status_code for reply in replies] == [200] * 4
        flagged = [reply.json()["results"][0]["flagged"] for reply in replies]
        assert flagged == [verdict.flagged for verdict in protector.check(pairs)]
        assert refusals == []
        return
    assert [reply.status_code for reply in replies] == [503] * 4
    assert all(
        "shutting down and did not finish this request within its grace period (graceful_shutdown_s: 1 s); none "
        "of its pairs was checked: send it again" in reply.json()["detail"]
        for reply in replies
    )
    assert refusals == ["shutting down: 4 request(s) still running after graceful_shutdown_s (1 s) answered 503"]


def _wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


def _refused(url: str) -> bool:
    try:
        httpx.get(url, timeout=5)
    except httpx.ConnectError:
        return True
    return False
