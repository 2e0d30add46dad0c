"""The Ray Serve deployment: a local Ray instance on 2 CPUs, two replicas, verdicts equal in-process ones.

Marked ``ray``: it starts Ray and two replica processes, about a minute; ``pytest -m 'not ray'`` leaves it out.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from pathlib import Path

import httpx
import pytest
from detector_support import distinct_pairs

from protector_models import Protector
from protector_models.config.schema import ProtectorConfig
from protector_models.serving.ray_app import DEPLOYMENT_NAME, app_builder, build_deployment, deployment_options, run
from protector_models.serving.settings import RaySettings, ServeSettings, read_serve_settings

pytestmark = [pytest.mark.ray, pytest.mark.filterwarnings("ignore::DeprecationWarning")]
REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_two_replicas_on_a_local_ray_give_in_process_verdicts(pinned_detector_config: dict, protector: Protector):
    import ray
    from ray import serve

    env = {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": env})
    try:
        settings = ServeSettings(port=_free_port(), ray=RaySettings(num_replicas=2, num_cpus=0.5))
        run(ProtectorConfig.from_dict(pinned_detector_config), settings)
        deployment = serve.status().applications[DEPLOYMENT_NAME].deployments[DEPLOYMENT_NAME]
        assert deployment.replica_states.get("RUNNING") == 2
        pairs = distinct_pairs(32)
        expected = protector.check(pairs)

        async def clients() -> list[dict]:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.port}", timeout=60) as client:
                replies = await asyncio.gather(
                    *(
                        client.post("/v1/check", json={"pairs": [{"question": p.question, "answer": p.answer}]})
                        for p in pairs
                    )
                )
            assert [reply.status_code for reply in replies] == [200] * len(pairs)
            return [reply.json()["results"][0] for reply in replies]

        got = asyncio.run(clients())
        assert [r["flagged"] for r in got] == [v.flagged for v in expected]
        assert [r["harm_score"] for r in got] == pytest.approx([v.harm_score for v in expected], abs=1e-5)
        bad = httpx.post(f"http://127.0.0.1:{settings.port}/v1/check", json={"pairs": [{"anwser": "x"}]})
        assert bad.status_code == 422
        assert "pairs.0.anwser: unknown key" in bad.json()["detail"]
    finally:
        serve.shutdown()
        ray.shutdown()


def test_replicas_resources_and_autoscaling_come_from_the_serve_section(tmp_path: Path):
    deployment = build_deployment(
        ProtectorConfig.from_preset("default"), ServeSettings(ray=RaySettings(num_replicas=3, num_gpus=0.5))
    )
    assert (deployment.num_replicas, deployment.ray_actor_options["num_gpus"]) == (3, 0.5)
    config = tmp_path / "serve.yaml"
    config.write_text("protector:\n  preset: default\nserve:\n  ray: {num_gpus: 1, autoscaling: {max_replicas: 3}}\n")
    assert app_builder({"config": str(config)}) is not None
    options = deployment_options(read_serve_settings(config).ray)
    assert options["ray_actor_options"] == {"num_cpus": 1.0, "num_gpus": 1.0}
    assert options["autoscaling_config"] == {"min_replicas": 1, "max_replicas": 3, "target_ongoing_requests": 32.0}
    assert "num_replicas" not in options
    for args in ({"config": "a.yaml", "preset": "default"}, {"replicas": "2"}):
        with pytest.raises(ValueError, match="give config=FILE or preset=NAME"):
            app_builder(args)


def test_run_without_a_ray_connection_starts_a_local_ray_whose_every_listener_is_on_loopback(
    pinned_detector_config: dict, monkeypatch: pytest.MonkeyPatch
):
    """The audit's case: run() bound the app to 127.0.0.1, but 14 of Ray's new listeners (GCS, raylet, dashboard,
    agents, Serve controller, proxy, replicas) bound every interface or the node's address."""
    import psutil
    import ray
    from ray import serve

    monkeypatch.setenv("PYTHONPATH", str(REPO))  # Ray's processes inherit the environment of the one starting it
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert not ray.is_initialized()
    try:
        settings = ServeSettings(port=_free_port(), ray=RaySettings(num_replicas=1, num_cpus=0.5))
        run(ProtectorConfig.from_dict(pinned_detector_config), settings)
        reply = httpx.post(f"http://127.0.0.1:{settings.port}/v1/check", json={"pairs": [{"answer": "mix the poison"}]})
        assert reply.json()["results"][0]["flagged"] is True  # served, through the loopback replica
        processes = [psutil.Process(), *psutil.Process().children(recursive=True)]
        assert any("gcs_server" in process.name() for process in processes)
        pids = {process.pid for process in processes}
        listeners = [
            (c.laddr.ip, c.laddr.port, psutil.Process(c.pid).name())
            for c in psutil.net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN and c.pid in pids
        ]
        assert len(listeners) >= 8  # GCS, raylet, agents, workers, controller, proxy, replica
        assert [listener for listener in listeners if not _on_loopback(listener[0])] == []
    finally:
        serve.shutdown()
        ray.shutdown()


def test_run_leaves_a_ray_connection_as_it_is(monkeypatch: pytest.MonkeyPatch):
    import ray

    from protector_models.serving.ray_app import start_local_ray_on_loopback

    def never(**kwargs):
        raise AssertionError("a local Ray was started")

    monkeypatch.setattr(ray, "init", never)
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")  # a cluster to join: serve.start connects to it
    assert start_local_ray_on_loopback() is False
    monkeypatch.delenv("RAY_ADDRESS")
    monkeypatch.setattr(ray, "is_initialized", lambda: True)
    assert start_local_ray_on_loopback() is False


def _on_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return (ip.ipv4_mapped or ip).is_loopback if isinstance(ip, ipaddress.IPv6Address) else ip.is_loopback
