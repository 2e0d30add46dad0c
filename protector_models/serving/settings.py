"""The service's own settings: the ``serve:`` section of a config YAML, next to the core's ``protector:``.

::

    protector:            # the core schema (docs/configuration.md)
      preset: default
      batching: {max_batch_size: 32, max_wait_ms: 5}
    serve:                # optional: this section (ServeSettings)
      port: 8000
      max_pairs: 256
      ray: {num_replicas: 2, num_gpus: 1}
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from protector_models.config.schema import BatchingConfig, EnvVarName, ProtectorConfig, validate_section
from protector_models.config.yaml_io import read_config_yaml
from protector_models.errors import ConfigError

SECTION = "serve"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class RayAutoscaling(_Strict):
    """Ray Serve autoscaling: replicas are added while each has more than ``target_ongoing_requests``."""

    min_replicas: int = Field(1, ge=0, le=1000)
    max_replicas: int = Field(4, ge=1, le=1000)
    target_ongoing_requests: float = Field(32.0, gt=0, description="Requests in flight per replica to aim for.")

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas ({self.min_replicas}) exceeds max_replicas ({self.max_replicas})")
        return self


class RaySettings(_Strict):
    """How the Ray Serve deployment runs: replicas, their resources, autoscaling."""

    num_replicas: int = Field(1, ge=1, le=1000, description="Replicas, each with its own model (unless autoscaling).")
    num_cpus: float = Field(1.0, ge=0, description="CPUs reserved per replica.")
    num_gpus: float = Field(0.0, ge=0, description="GPUs per replica (e.g. 1, or 0.5 to share one between two).")
    max_ongoing_requests: int = Field(
        128, ge=1, description="Requests one replica takes at once (its batcher gathers them)."
    )
    autoscaling: RayAutoscaling | None = Field(None, description="Scale between min and max replicas by load.")
    route_prefix: str = Field("/", pattern=r"^/[A-Za-z0-9_\-/]*$")


class ServeSettings(_Strict):
    """Where the service listens and what a request may hold."""

    host: str = Field("127.0.0.1", min_length=1, description="Address to bind; 0.0.0.0 exposes it to the network.")
    port: int = Field(8000, ge=0, le=65535, description="TCP port (0: any free port).")
    max_pairs: int = Field(256, ge=1, le=100_000, description="Most pairs in one request.")
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024, description="Largest request body, in bytes.")
    graceful_shutdown_s: float = Field(30.0, gt=0, description="On SIGTERM, how long in-flight requests may finish.")
    require_pins: bool = Field(
        True, description="Refuse a local model directory without sha256 pins (`require_pins` of every model)."
    )
    api_key_env: EnvVarName | None = Field(
        None,
        description="Environment variable holding the key every request but /healthz must send as "
        "`Authorization: Bearer KEY`; unset: no key.",
    )
    ssl_certfile: str | None = Field(None, min_length=1, description="PEM certificate: serve HTTPS (with ssl_keyfile).")
    ssl_keyfile: str | None = Field(None, min_length=1, description="PEM private key of ssl_certfile.")
    ray: RaySettings = Field(default_factory=RaySettings)

    @model_validator(mode="after")
    def _tls_pair(self) -> Self:
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError("ssl_certfile and ssl_keyfile go together: give both for HTTPS, or neither")
        return self

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "serve settings") -> Self:
        """Validate a mapping; unknown keys are named with the allowed ones."""
        return validate_section(cls, data, source)


def read_serve_settings(path: str | Path) -> ServeSettings:
    """The ``serve:`` section of a config YAML (defaults when there is none)."""
    path = Path(path)
    data = read_config_yaml(path)
    if not isinstance(data, Mapping) or data.get(SECTION) is None:
        return ServeSettings()
    if not isinstance(data.get("protector"), Mapping):
        raise ConfigError(f"{path}: a file with a '{SECTION}:' section keeps the core keys under 'protector:'")
    return ServeSettings.from_dict(data[SECTION], source=f"'{SECTION}:' section of {path}")


def as_served(config: ProtectorConfig, settings: ServeSettings) -> ProtectorConfig:
    """``config`` as the service loads it: every model ``require_pins`` unless ``settings`` turn that off."""
    return config.requiring_pins() if settings.require_pins else config


def with_batching(
    config: ProtectorConfig,
    *,
    off: bool = False,
    max_batch_size: int | None = None,
    max_wait_ms: float | None = None,
    workers: int | None = None,
) -> ProtectorConfig:
    """``config`` as a service runs it: micro-batching on (its own settings, or the defaults, with these
    overrides), or off with ``off``. Concurrent requests then share detector passes."""
    if off:
        return config.model_copy(update={"batching": None})
    batching: dict[str, Any] = (config.batching or BatchingConfig()).model_dump()
    if max_batch_size is not None:
        batching["max_batch_size"] = max_batch_size
    if max_wait_ms is not None:
        batching["max_wait_ms"] = max_wait_ms
    if workers is not None:
        batching["workers"] = workers
    return ProtectorConfig.from_dict({**config.model_dump(), "batching": batching})
