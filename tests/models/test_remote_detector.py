"""The remote detector: scores from a service over HTTP, local thresholds, and every failure fails closed."""

from __future__ import annotations

import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import yaml
from detector_support import GatedDetector, distinct_pairs
from server_support import running, serve_process

from protector_models import ConfigError, ModelRuntimeError, Pair, Protector
from protector_models.config.schema import BatchingConfig
from protector_models.models.remote import RemoteDetector
from protector_models.serving.app import create_app
from protector_models.serving.settings import ServeSettings

HARMFUL = Pair("how do i make it", "first take the poison and mix it")
BENIGN = Pair("how do i make it", "mix the bread with some music")


@pytest.fixture
def service(detector_config: dict):
    server = Protector.from_config({**detector_config, "threshold": 0.99, "batching": {"max_wait_ms": 5}})
    with running(create_app(server, ServeSettings(max_pairs=8))) as url:
        yield url


def _remote(url: str, **options) -> dict:
    return {"kind": "remote", "url": url, "timeout_s": 10, "retries": 2, "backoff_s": 0.01, **options}


def _requests(url: str, status: str = "200") -> float:
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith(f'mllm_protector_requests_total{{endpoint="/v1/check",status="{status}"}} '):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_remote_scores_equal_local_ones_and_thresholds_stay_local(service, protector):
    pairs = distinct_pairs(6)
    with RemoteDetector(service) as remote:
        assert remote.score(pairs) == protector.detector.score(pairs)
    guard = Protector.from_config({"detector": _remote(service), "threshold": 0.5})  # the server's is 0.99
    assert guard.check(pairs) == protector.check(pairs)
    assert guard.protect(pairs) == protector.protect(pairs)
    assert any(verdict.flagged for verdict in guard.check(pairs))


def test_pairs_go_in_requests_of_batch_size(service, protector):
    pairs = distinct_pairs(12)
    with RemoteDetector(service, batch_size=5) as remote:
        scores = remote.score(pairs)
    assert scores == pytest.approx(protector.detector.score(pairs), abs=1e-5)
    assert _requests(service) == 3


def test_a_client_batcher_gathers_concurrent_callers_into_requests(service, protector):
    pairs = distinct_pairs(16)
    guard = Protector.from_config(
        {"detector": _remote(service, batch_size=8), "threshold": 0.5, "batching": {"max_wait_ms": 100}}
    )
    with guard, ThreadPoolExecutor(16) as pool:
        got = list(pool.map(lambda pair: guard.check([pair])[0], pairs))
    assert [v.flagged for v in got] == [v.flagged for v in protector.check(pairs)]
    assert _requests(service) < 16


def test_refusals_are_not_retried_and_say_why(service):
    with RemoteDetector(service, batch_size=9) as remote, pytest.raises(ModelRuntimeError, match="at most 8 pairs"):
        remote.score(distinct_pairs(9))
    assert _requests(service, "422") == 1


def test_a_5xx_is_retried_then_fails_with_the_servers_words(protector):
    failing = Protector(GatedDetector(protector.detector, fail_on="explode"), batching=BatchingConfig(max_wait_ms=0))
    with running(create_app(failing)) as url:
        with RemoteDetector(url, retries=2, backoff_s=0.01) as remote:
            with pytest.raises(ModelRuntimeError, match=r"answered 503: .*out of memory"):
                remote.score([Pair("q", "explode the cake")])
            assert remote.score([BENIGN]) == protector.detector.score([BENIGN])  # the service is fine otherwise
        assert _requests(url, "503") == 3


def test_an_answer_the_server_could_not_check_is_never_a_score(protector):
    lenient = Protector(GatedDetector(protector.detector, fail_on="explode"), on_error="pass")
    with running(create_app(lenient)) as url, RemoteDetector(url) as remote:
        with pytest.raises(ModelRuntimeError, match=r"could not check pair 0: .*out of memory"):
            remote.score([Pair("q", "explode the cake")])
        (result,) = Protector(remote, on_error="block").protect([Pair("q", "explode the cake")])
    assert (result.action, result.checked) == ("block", False)


def test_a_slow_server_times_out_without_retries(protector):
    slow = GatedDetector(protector.detector)
    with running(create_app(Protector(slow, batching=BatchingConfig(max_wait_ms=0)))) as url:
        slow.gate.clear()
        try:
            with RemoteDetector(url, timeout_s=0.3, retries=3) as remote:
                started = time.monotonic()
                with pytest.raises(ModelRuntimeError, match="ReadTimeout"):
                    remote.score([BENIGN])
                assert time.monotonic() - started < 1.2  # one attempt, not four
        finally:
            slow.gate.set()


def test_connection_errors_are_retried_with_backoff():
    with RemoteDetector("http://127.0.0.1:9", retries=2, backoff_s=0.2, timeout_s=1) as remote:
        started = time.monotonic()
        with pytest.raises(ModelRuntimeError, match=r"unreachable: ConnectError"):
            remote.score([BENIGN])
    assert time.monotonic() - started >= 0.3  # waited 0.1-0.2 s, then 0.2-0.4 s


def test_a_closed_protector_closes_its_remote_client(service):
    guard = Protector.from_config({"detector": _remote(service), "threshold": 0.5, "on_error": "block"})
    assert guard.check([HARMFUL])[0].checked
    guard.close()
    (result,) = guard.protect([HARMFUL])
    assert (result.action, result.checked) == ("block", False)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"url": "ftp://host"}, "must be the service's base URL"),
        ({"url": "http://127.0.0.1:8000", "retries": -1}, r"retries: must be an integer within \[0, 10\]"),
        ({"url": "http://127.0.0.1:8000", "timeout_s": 0}, r"timeout_s: must be a number within \(0, 600\]"),
    ],
)
def test_bad_settings_are_config_errors(options, message):
    with pytest.raises(ConfigError, match=message):
        RemoteDetector(**options)


def test_a_killed_backend_gives_callers_on_error_never_a_silent_pass(
    tmp_path: Path, pinned_detector_config: dict, protector
):
    config = tmp_path / "serve.yaml"
    config.write_text(yaml.safe_dump({"protector": pinned_detector_config, "serve": {"max_pairs": 64}}))
    with serve_process("--config", str(config)) as (child, url):
        guards = {
            on_error: Protector.from_config(
                {
                    "detector": _remote(url, retries=1, timeout_s=5),
                    "threshold": 0.5,
                    "on_error": on_error,
                    "batching": {},
                }
            )
            for on_error in ("raise", "block", "pass")
        }
        assert guards["raise"].check([HARMFUL, BENIGN]) == protector.check([HARMFUL, BENIGN])
        child.send_signal(signal.SIGKILL)
        child.wait(30)
        with pytest.raises(ModelRuntimeError, match="unreachable"):
            guards["raise"].check([BENIGN])
        with ThreadPoolExecutor(16) as pool:  # concurrent callers, through the client's batcher
            blocked = list(pool.map(lambda pair: guards["block"].protect([pair])[0], [HARMFUL, BENIGN] * 8))
            passed = list(pool.map(lambda pair: guards["pass"].protect([pair])[0], [HARMFUL, BENIGN] * 8))
    for result in blocked:
        assert (result.action, result.output, result.checked) == ("block", guards["block"].refusal_text, False)
        assert "unreachable" in result.error
    for result in passed:  # passed on, but marked: never as if it had been checked
        assert (result.action, result.checked, result.harm_score) == ("unchecked", False, None)
    for guard in guards.values():
        guard.close()


def test_the_command_shuts_down_gracefully_on_sigterm(tmp_path: Path, pinned_detector_config: dict):
    config = tmp_path / "serve.yaml"
    config.write_text(yaml.safe_dump({"protector": pinned_detector_config}))
    with serve_process("--config", str(config), "--max-wait-ms", "1") as (child, url):
        assert httpx.get(f"{url}/healthz").json()["batching"] is True
        assert httpx.post(f"{url}/v1/check", json={"pairs": [{"answer": "mix the poison"}]}).json()["results"][0][
            "flagged"
        ]
        child.send_signal(signal.SIGTERM)
        assert child.wait(30) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once it has shut down
    assert "Application shutdown complete" in "".join(child.output)


def test_the_adapters_work_with_no_local_model(service):
    from langchain_core.messages import AIMessage
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

    from langchain_mllm_protector import MLLMProtector
    from llama_index_mllm_protector import MLLMProtectorPostprocessor

    remote = Protector.from_config({"detector": _remote(service), "threshold": 0.5, "action": "refuse"})
    guard = MLLMProtector(protector=remote)
    assert guard.invoke(AIMessage("first take the poison")).content == remote.refusal_text
    assert guard.invoke(AIMessage("mix the bread with some music")).content == "mix the bread with some music"
    screen = MLLMProtectorPostprocessor(remote, action="drop")
    nodes = [NodeWithScore(node=TextNode(text=text)) for text in ("use the weapon", "some garden music")]
    kept = screen.postprocess_nodes(nodes, QueryBundle("how do i make it"))
    assert [node.node.get_content() for node in kept] == ["some garden music"]
    assert isinstance(remote.detector, RemoteDetector)


def test_scan_runs_against_the_service(service, tmp_path: Path, protector):
    import json

    from typer.testing import CliRunner

    from protector_models.cli import app

    config = tmp_path / "remote.yaml"
    config.write_text(yaml.safe_dump({"detector": _remote(service), "threshold": 0.5, "action": "refuse"}))
    source = tmp_path / "in.jsonl"
    source.write_text(
        "".join(json.dumps({"question": p.question, "answer": p.answer}) + "\n" for p in (HARMFUL, BENIGN))
    )
    outcome = CliRunner().invoke(app, ["scan", str(source), "-o", "-", "--config", str(config)])
    assert outcome.exit_code == 0, outcome.output
    rows = [json.loads(line) for line in outcome.stdout.splitlines() if line.startswith("{")]
    assert [row["output"] for row in rows] == [r.output for r in protector.protect([HARMFUL, BENIGN], action="refuse")]
    assert [row["flagged"] for row in rows] == [True, False]
