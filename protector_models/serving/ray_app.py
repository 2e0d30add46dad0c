"""The service as a Ray Serve deployment: the same FastAPI app, one protector (and micro-batcher) per replica.

From Python::

    handle = run(ProtectorConfig.from_yaml("protector.yaml"), read_serve_settings("protector.yaml"))

or with Ray's own command, which takes the same YAML (``protector:`` and ``serve:`` sections)::

    serve run protector_models.serving.ray_app:app_builder config=protector.yaml

Replicas, CPUs and GPUs per replica, and autoscaling come from the ``serve.ray`` section. Each replica builds
its protector from the config (data only: no model crosses the network), loads the model at start-up and
gathers its concurrent requests into shared detector passes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from protector_models.config.schema import ProtectorConfig
from protector_models.serving.settings import (
    RaySettings,
    ServeSettings,
    as_served,
    read_serve_settings,
    with_batching,
)

if TYPE_CHECKING:
    from fastapi import FastAPI
    from ray.serve import Application, Deployment
    from ray.serve.handle import DeploymentHandle

DEPLOYMENT_NAME = "mllm-protector"
INSTALL_HINT = "the Ray Serve deployment needs Ray: pip install 'ray[serve]' (or, in the clone, pip install '.[ray]')"


def build_deployment(config: ProtectorConfig, settings: ServeSettings | None = None) -> Deployment:
    """A Ray Serve deployment serving ``config`` (micro-batching on) as ``settings.ray`` says."""
    try:
        from ray import serve
    except ImportError as error:
        raise ImportError(f"{INSTALL_HINT} ({error})") from error
    settings = settings or ServeSettings()
    config_data = with_batching(as_served(config, settings)).model_dump(mode="json")
    settings_data = settings.model_dump(mode="json")

    def build_app() -> FastAPI:  # runs on each replica
        from protector_models.protector import Protector
        from protector_models.serving.app import create_app

        protector = Protector.from_config(ProtectorConfig.from_dict(config_data))
        return create_app(protector, ServeSettings.from_dict(settings_data))

    return serve.deployment(**deployment_options(settings.ray))(serve.ingress(build_app)())


def deployment_options(ray: RaySettings) -> dict[str, Any]:
    """``serve.deployment`` options from the ``serve.ray`` section: replicas (or autoscaling) and resources."""
    options: dict[str, Any] = {
        "name": DEPLOYMENT_NAME,
        "ray_actor_options": {"num_cpus": ray.num_cpus, "num_gpus": ray.num_gpus},
        "max_ongoing_requests": ray.max_ongoing_requests,
    }
    if ray.autoscaling is None:
        options["num_replicas"] = ray.num_replicas
    else:
        options["autoscaling_config"] = ray.autoscaling.model_dump()
    return options


def build_application(config: ProtectorConfig, settings: ServeSettings | None = None) -> Application:
    """The deployment of :func:`build_deployment`, bound: what ``serve.run`` takes."""
    return build_deployment(config, settings).bind()


def run(
    config: ProtectorConfig, settings: ServeSettings | None = None, *, name: str = DEPLOYMENT_NAME
) -> DeploymentHandle:
    """Deploy on the Ray cluster this process is connected to (a local one is started if none), HTTP on
    ``settings.host:settings.port``; returns once every replica is up."""
    from ray import serve

    settings = settings or ServeSettings()
    serve.start(http_options={"host": settings.host, "port": settings.port})
    return serve.run(build_application(config, settings), name=name, route_prefix=settings.ray.route_prefix)


def app_builder(args: dict[str, str]) -> Application:
    """For ``serve run protector_models.serving.ray_app:app_builder config=FILE`` (or ``preset=NAME``)."""
    unknown = set(args) - {"config", "preset"}
    if unknown or ("config" in args) == ("preset" in args):
        raise ValueError(f"give config=FILE or preset=NAME, nothing else; got {sorted(args)}")
    if "config" in args:
        return build_application(ProtectorConfig.from_yaml(args["config"]), read_serve_settings(args["config"]))
    return build_application(ProtectorConfig.from_preset(args["preset"]))
