"""``mllm-protector serve``: the HTTP service (FastAPI + uvicorn) for one protector, model loaded once."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from pathlib import Path
from typing import Annotated, Any

import typer

from protector_models.cli.options import (
    BatchSizeOption,
    ConfigOption,
    DeviceOption,
    PresetOption,
    ThresholdOption,
    build_config,
    fail,
)
from protector_models.errors import ConfigError, ProtectorError
from protector_models.serving.settings import ServeSettings, as_served, read_serve_settings, with_batching

INSTALL_HINT = (
    "the service needs FastAPI and uvicorn: pip install fastapi uvicorn prometheus-client "
    "(or, in the clone, pip install '.[serve]')"
)


def serve(
    config: ConfigOption = None,
    preset: PresetOption = None,
    host: Annotated[str | None, typer.Option("--host", help="Address to bind. Default: 127.0.0.1.")] = None,
    port: Annotated[int | None, typer.Option("--port", min=0, max=65535, help="TCP port. Default: 8000.")] = None,
    threshold: ThresholdOption = None,
    device: DeviceOption = None,
    batch_size: BatchSizeOption = None,
    max_batch_size: Annotated[
        int | None, typer.Option("--max-batch-size", min=1, help="Most pairs the micro-batcher gathers. Default: 32.")
    ] = None,
    max_wait_ms: Annotated[
        float | None,
        typer.Option("--max-wait-ms", min=0.0, help="Longest a request waits for others to join. Default: 5."),
    ] = None,
    batch_workers: Annotated[
        int | None, typer.Option("--batch-workers", min=1, help="Threads scoring batches at once. Default: 1.")
    ] = None,
    no_batching: Annotated[
        bool, typer.Option("--no-batching", help="Score each request on its own (for comparison).")
    ] = False,
    max_pairs: Annotated[int | None, typer.Option("--max-pairs", min=1, help="Most pairs per request.")] = None,
    api_key_env: Annotated[
        str | None,
        typer.Option(
            "--api-key-env", metavar="NAME", help="Require the key in this environment variable (Bearer token)."
        ),
    ] = None,
    ssl_certfile: Annotated[str | None, typer.Option("--ssl-certfile", help="PEM certificate: serve HTTPS.")] = None,
    ssl_keyfile: Annotated[str | None, typer.Option("--ssl-keyfile", help="PEM private key for HTTPS.")] = None,
    log_level: Annotated[str, typer.Option("--log-level", help="uvicorn's log level.")] = "info",
) -> None:
    """Serve POST /v1/check and /v1/protect, GET /healthz and /metrics over HTTP.

    Concurrent requests share detector passes (micro-batching, on unless --no-batching). The detector reads the
    question and answer text of every request: bind to 127.0.0.1 (the default), or require a key
    (--api-key-env) and serve HTTPS, or keep a gateway in front.
    """
    try:
        import uvicorn

        from protector_models.serving.app import create_app
        from protector_models.serving.shutdown import GracefulServer
    except ImportError as error:
        raise fail(ImportError(f"{INSTALL_HINT} ({error})")) from None
    try:
        core = with_batching(
            build_config(config, preset, threshold=threshold, device=device, batch_size=batch_size),
            off=no_batching,
            max_batch_size=max_batch_size,
            max_wait_ms=max_wait_ms,
            workers=batch_workers,
        )
        settings = _settings(
            config,
            host=host,
            port=port,
            max_pairs=max_pairs,
            api_key_env=api_key_env,
            ssl_certfile=ssl_certfile,
            ssl_keyfile=ssl_keyfile,
        )
        _check_tls_files(settings)
        _check_port_free(settings.host, settings.port)
        from protector_models.protector import Protector

        protector = Protector.from_config(as_served(core, settings))
        _ = protector.detector, protector.rewriter  # load now: a model that cannot load is refused before listening
        app = create_app(protector, settings)
    except (ProtectorError, OSError) as error:
        raise fail(error) from None
    if settings.api_key_env is None and not _loopback(settings.host):
        typer.echo(
            f"warning: serving on {settings.host} without a key: anyone who reaches the port can use the detector; "
            "pass --api-key-env NAME or keep a gateway in front",
            err=True,
        )
    served = f"config {config}" if config else f"preset {preset or 'default'}"
    scheme = "https" if settings.ssl_certfile else "http"
    typer.echo(
        f"serving {served} (threshold {core.threshold:g}, action {core.action}, on_error {core.on_error}) on "
        f"{scheme}://{settings.host}:{settings.port}; API docs at /docs and /openapi.json",
        err=True,
    )
    server = GracefulServer(
        uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            log_level=log_level,
            ssl_certfile=settings.ssl_certfile,
            ssl_keyfile=settings.ssl_keyfile,
        ),
        app.state.drain,
    )
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C, raised again by uvicorn once it has shut down
        server.run()
    if not server.started:
        raise typer.Exit(3)  # as uvicorn.run: the app did not start (uvicorn logged why)


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _check_tls_files(settings: ServeSettings) -> None:
    """Missing certificate files are named before the model loads, not found by the TLS stack at start."""
    for name in ("ssl_certfile", "ssl_keyfile"):
        path = getattr(settings, name)
        if path is not None and not Path(path).is_file():
            raise ConfigError(f"{name} {path} is not a file: give the PEM file's path")


def _check_port_free(host: str, port: int) -> None:
    """A port already in use is named before the model loads (port 0 asks for any free one)."""
    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as error:
        raise ConfigError(f"--host {host}: cannot resolve it ({error.strerror or error}); give an address") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: a closing socket is no owner
        try:
            probe.bind(address)
        except OSError as error:
            raise ConfigError(
                f"cannot listen on {host}:{port} ({error.strerror or error}): another process holds the port, or "
                "the address is not this machine's; pass --port with a free port (or stop the other server)"
            ) from None


def _settings(config: Path | None, **overrides: Any) -> ServeSettings:
    settings = read_serve_settings(config) if config else ServeSettings()
    changed = {key: value for key, value in overrides.items() if value is not None}
    return ServeSettings.from_dict({**settings.model_dump(), **changed}) if changed else settings


def register(app: typer.Typer) -> None:
    """Add ``serve`` to the command line."""
    app.command("serve")(serve)
