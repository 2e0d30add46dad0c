"""The service as a Ray Serve deployment: the same FastAPI app, one protector (and micro-batcher) per replica.

From Python::

    handle = run(ProtectorConfig.from_yaml("protector.yaml"), read_serve_settings("protector.yaml"))

or with Ray's own command, which takes the same YAML (``protector:`` and ``serve:`` sections)::

    serve run protector_models.serving.ray_app:app_builder config=protector.yaml

Replicas, CPUs and GPUs per replica, and autoscaling come from the ``serve.ray`` section. Each replica builds
its protector from the config (data only: no model crosses the network), loads the model at start-up and
gathers its concurrent requests into shared detector passes.

:func:`run` started without a Ray connection (no ``ray.init`` before it, no ``RAY_ADDRESS``) starts a local Ray
whose every listener (GCS, raylet, agents, workers, the Serve controller, proxy and replicas) is bound to loopback;
on a cluster, Ray's own listeners are the cluster's to close (docs/serving.md, "What Ray listens on").
"""

from __future__ import annotations

import ipaddress
import os
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

        _replica_grpc_on_loopback()  # before Ray Serve starts the replica's gRPC server, once this returns

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
    """Deploy on the Ray cluster this process is connected to (``ray.init`` before this) or ``RAY_ADDRESS`` names,
    else on a new local Ray bound to loopback; HTTP on ``settings.host:settings.port``. Returns once every replica
    is up."""
    from ray import serve

    settings = settings or ServeSettings()
    start_local_ray_on_loopback()
    serve.start(http_options={"host": settings.host, "port": settings.port})
    return serve.run(build_application(config, settings), name=name, route_prefix=settings.ray.route_prefix)


LOOPBACK_SWITCH = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
"""Ray's switch that, off, makes a node use the loopback address rather than the one other machines reach
(Ray's default on Windows and macOS); ``ray.init`` reads it as ``ray._private.ray_constants.ENABLE_RAY_CLUSTER``."""


def start_local_ray_on_loopback() -> bool:
    """Start a local Ray bound to loopback, unless this process is connected to Ray already or ``RAY_ADDRESS``
    names a cluster to connect to (then ``serve.start`` connects as before). Whether a local Ray was started.

    Ray binds a local instance's listeners to the node's address, which on Linux is the one other machines
    reach, unauthenticated but for Ray's token; with the node's address on loopback they listen there only.
    """
    import ray
    from ray._private import ray_constants

    if ray.is_initialized() or os.environ.get("RAY_ADDRESS"):
        return False
    saved_switch, saved_constant = os.environ.get(LOOPBACK_SWITCH), ray_constants.ENABLE_RAY_CLUSTER
    os.environ[LOOPBACK_SWITCH] = "0"  # read by the processes Ray starts now: they inherit it
    ray_constants.ENABLE_RAY_CLUSTER = False  # read by ray.init here, imported before the variable was set
    try:
        ray.init(address="local", namespace="serve", _node_ip_address="127.0.0.1")
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved_constant
        if saved_switch is None:
            os.environ.pop(LOOPBACK_SWITCH, None)
        else:
            os.environ[LOOPBACK_SWITCH] = saved_switch
    node = ray.util.get_node_ip_address()
    if not _loopback(node):  # Ray ignored the switch: say so rather than expose the node
        ray.shutdown()
        raise RuntimeError(
            f"the local Ray started on {node}, not on loopback: this Ray version no longer honours "
            f"{LOOPBACK_SWITCH}=0; start Ray yourself (ray.init) bound as you need, then call run again"
        )
    return True


def _replica_grpc_on_loopback() -> None:
    """On a loopback node (a local Ray that :func:`run` started), bind the replica's inter-deployment gRPC server
    to loopback too: Ray Serve binds it to every interface (``[::]:0``) whatever the node's address is."""
    import ray
    from ray.serve._private import replica

    if not _loopback(ray.util.get_node_ip_address()):
        return  # a cluster: its replicas must be reachable from the other nodes' proxies
    add_port = getattr(replica, "add_port_to_grpc_server", None)
    if add_port is None or getattr(add_port, "loopback", False):
        return

    node = ray.util.get_node_ip_address()
    host = f"[{node}]" if ":" in node else node

    def on_loopback(server: Any, address: str) -> int:
        if address.startswith("[::]:"):  # every interface: the node's (loopback) address instead
            address = f"{host}:{address.removeprefix('[::]:')}"
        return int(add_port(server, address))

    on_loopback.loopback = True  # type: ignore[attr-defined]
    replica.add_port_to_grpc_server = on_loopback


def _loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return (ip.ipv4_mapped or ip).is_loopback if isinstance(ip, ipaddress.IPv6Address) else ip.is_loopback


def app_builder(args: dict[str, str]) -> Application:
    """For ``serve run protector_models.serving.ray_app:app_builder config=FILE`` (or ``preset=NAME``)."""
    unknown = set(args) - {"config", "preset"}
    if unknown or ("config" in args) == ("preset" in args):
        raise ValueError(f"give config=FILE or preset=NAME, nothing else; got {sorted(args)}")
    if "config" in args:
        return build_application(ProtectorConfig.from_yaml(args["config"]), read_serve_settings(args["config"]))
    return build_application(ProtectorConfig.from_preset(args["preset"]))
