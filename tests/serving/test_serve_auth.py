"""A service with a key refuses requests without it (401), keeps /healthz open, and the remote detector sends it."""

from __future__ import annotations

import httpx
import pytest
from detector_support import distinct_pairs
from server_support import running

from protector_models import ConfigError, ModelRuntimeError, Protector
from protector_models.serving.app import create_app
from protector_models.serving.settings import ServeSettings

KEY = "s3cret-key"


@pytest.fixture
def keyed_service(detector_config: dict, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PROTECTOR_TEST_KEY", KEY)
    app = create_app(Protector.from_config(detector_config), ServeSettings(api_key_env="PROTECTOR_TEST_KEY"))
    with running(app) as url:
        yield url


def test_every_endpoint_but_health_needs_the_key(keyed_service):
    body = {"pairs": [{"question": "q", "answer": "a"}]}
    with httpx.Client(base_url=keyed_service) as client:
        assert client.get("/healthz").status_code == 200
        for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": KEY}):
            refused = client.post("/v1/check", json=body, headers=headers)
            assert refused.status_code == 401
            assert refused.headers["www-authenticate"] == "Bearer"
            assert "Authorization: Bearer KEY" in refused.json()["detail"]
            assert client.post("/v1/protect", json=body, headers=headers).status_code == 401
            assert client.get("/metrics", headers=headers).status_code == 401
        allowed = {"authorization": f"Bearer {KEY}"}
        assert client.post("/v1/check", json=body, headers=allowed).status_code == 200
        assert client.post("/v1/protect", json=body, headers=allowed).status_code == 200
        assert client.get("/metrics", headers=allowed).status_code == 200


def test_the_remote_detector_sends_the_key_named_in_its_config(keyed_service, protector, monkeypatch):
    pairs = distinct_pairs(4)
    remote = {"kind": "remote", "url": keyed_service, "retries": 0}
    keyed = Protector.from_config({"detector": {**remote, "api_key_env": "PROTECTOR_TEST_KEY"}, "threshold": 0.5})
    assert [v.harm_score for v in keyed.check(pairs)] == protector.detector.score(pairs)
    unkeyed = Protector.from_config({"detector": remote, "threshold": 0.5, "on_error": "raise"})
    with pytest.raises(ModelRuntimeError, match='answered 401: "missing or wrong API key'):
        unkeyed.check(pairs)
    monkeypatch.delenv("PROTECTOR_TEST_KEY")
    with pytest.raises(ConfigError, match="PROTECTOR_TEST_KEY, which is unset or empty"):
        Protector.from_config({"detector": {**remote, "api_key_env": "PROTECTOR_TEST_KEY"}, "threshold": 0.5}).load()


def test_a_service_told_to_use_a_key_does_not_start_without_it(detector_config, monkeypatch):
    monkeypatch.delenv("PROTECTOR_TEST_KEY", raising=False)
    with pytest.raises(ConfigError, match="PROTECTOR_TEST_KEY, which is unset or empty: set it to the key"):
        create_app(Protector.from_config(detector_config), ServeSettings(api_key_env="PROTECTOR_TEST_KEY"))


def test_tls_files_come_in_pairs_and_must_exist(tmp_path):
    from typer.testing import CliRunner

    from protector_models.cli import app

    with pytest.raises(ConfigError, match="ssl_certfile and ssl_keyfile go together"):
        ServeSettings.from_dict({"ssl_certfile": "cert.pem"})
    missing = str(tmp_path / "cert.pem")
    outcome = CliRunner().invoke(
        app, ["serve", "--preset", "default", "--ssl-certfile", missing, "--ssl-keyfile", missing]
    )
    assert outcome.exit_code != 0
    assert f"ssl_certfile {missing} is not a file" in outcome.output
    assert "Traceback" not in outcome.output


@pytest.mark.parametrize("secret", ["sk-123-secret", "0123456789abcdef0123"])
def test_a_key_given_where_a_variable_name_belongs_is_never_echoed(tmp_path, secret):
    from typer.testing import CliRunner

    from protector_models.cli import app

    outcome = CliRunner().invoke(app, ["serve", "--preset", "default", "--api-key-env", secret])
    assert outcome.exit_code == 2
    assert "api_key_env: must be the name of the environment variable that holds the key" in outcome.output
    config = tmp_path / "remote.yaml"
    remote = f"{{kind: remote, url: 'http://127.0.0.1:1', api_key_env: '{secret}'}}"
    config.write_text(f"detector: {remote}\nthreshold: 0.5\n")
    (tmp_path / "in.jsonl").write_text('{"answer": "hi"}\n')
    scanned = CliRunner().invoke(app, ["scan", str(tmp_path / "in.jsonl"), "-o", "-", "--config", str(config)])
    assert scanned.exit_code == 2
    assert "detector.api_key_env: must be the name of the environment variable" in scanned.output
    for text in (outcome.output, scanned.output):
        assert secret not in text
