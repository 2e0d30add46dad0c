"""A detector served elsewhere: ``score(pairs)`` is a ``POST {url}/v1/check`` to ``mllm-protector serve``.

The question and answer text of every pair goes over the network; the scores come back. Thresholds and actions
stay with the caller. Connection errors and 5xx replies are retried a bounded number of times with exponential
backoff; every failure (network, timeout, refusal, malformed reply, an answer the server could not check) is a
:class:`ModelRuntimeError`, so a protector's ``on_error`` applies and nothing passes unchecked silently.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from typing import Any, Self

import httpx
from pydantic import ValidationError

from protector_models.config.schema import RemoteDetectorConfig, describe_validation_error
from protector_models.errors import ConfigError, ModelRuntimeError, shown
from protector_models.interfaces import Judgement
from protector_models.models.api_keys import api_key_from_env
from protector_models.pairs import Pair

CHECK_PATH = "/v1/check"

_RETRIED = (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)
"""Connection failures, where the server did not (or could not) answer; a read timeout is not retried."""


class RemoteDetector:
    """Scores pairs with a remote ``mllm-protector serve`` (or its Ray Serve deployment), over a pooled client."""

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 10.0,
        retries: int = 2,
        backoff_s: float = 0.2,
        batch_size: int = 64,
        api_key: str | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        settings = {"url": url, "timeout_s": timeout_s, "retries": retries, "backoff_s": backoff_s}
        try:
            config = RemoteDetectorConfig.model_validate({**settings, "batch_size": batch_size})
        except ValidationError as error:
            raise ConfigError(
                describe_validation_error(error, RemoteDetectorConfig, "invalid remote detector")
            ) from None
        self.url = config.url
        self.retries = config.retries
        self.backoff_s = config.backoff_s
        self.batch_size = config.batch_size
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(
            base_url=self.url, timeout=config.timeout_s, transport=transport, follow_redirects=False, headers=headers
        )

    @classmethod
    def from_config(cls, config: RemoteDetectorConfig) -> Self:
        """A client for the service ``config.url``, sending the key in ``config.api_key_env`` if one is named."""
        return cls(
            config.url,
            timeout_s=config.timeout_s,
            retries=config.retries,
            backoff_s=config.backoff_s,
            batch_size=config.batch_size,
            api_key=api_key_from_env(config.api_key_env, what="remote detector api_key_env")
            if config.api_key_env
            else None,
        )

    def score(self, pairs: Sequence[Pair]) -> list[float]:
        """P(harmful) per pair, from the service, in input order (``batch_size`` pairs per request)."""
        return [judgement.score for judgement in self.judge(pairs)]

    def judge(self, pairs: Sequence[Pair]) -> list[Judgement]:
        """:meth:`score` with the categories and the deciding cascade detector the service reports."""
        judgements: list[Judgement] = []
        for start in range(0, len(pairs), self.batch_size):
            chunk = pairs[start : start + self.batch_size]
            judgements.extend(
                self._judgements(self._post([{"question": p.question, "answer": p.answer} for p in chunk]), chunk)
            )
        return judgements

    def close(self) -> None:
        """Close the pooled connections; later calls fail."""
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _post(self, pairs: list[dict[str, str]]) -> Any:
        """The JSON reply to one check request, retrying connection errors and 5xx replies."""
        where = f"{self.url}{CHECK_PATH}"
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                response = self._client.post(CHECK_PATH, json={"pairs": pairs})
            except _RETRIED as error:
                if last:
                    raise ModelRuntimeError(f"remote detector {where} unreachable: {_describe(error)}") from error
            except httpx.HTTPError as error:
                raise ModelRuntimeError(f"remote detector {where} failed: {_describe(error)}") from error
            except RuntimeError as error:  # a closed client
                raise ModelRuntimeError(f"remote detector {where}: {error}") from error
            else:
                if response.status_code < 500 or last:
                    return _reply(response, where)
            time.sleep(self.backoff_s * 2**attempt * random.uniform(0.5, 1.0))
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _judgements(reply: Any, pairs: Sequence[Pair]) -> list[Judgement]:
        results = reply.get("results") if isinstance(reply, dict) else None
        if not isinstance(results, list) or len(results) != len(pairs):
            raise ModelRuntimeError(f"remote detector replied without one result per pair: {shown(reply)}")
        judgements = []
        for index, item in enumerate(results):
            score = item.get("harm_score") if isinstance(item, dict) else None
            if not (isinstance(item, dict) and item.get("checked") is True):
                reason = item.get("error") if isinstance(item, dict) else None
                raise ModelRuntimeError(f"remote detector could not check pair {index}: {reason or shown(item)}")
            if isinstance(score, bool) or not isinstance(score, int | float) or not 0.0 <= score <= 1.0:
                raise ModelRuntimeError(f"remote detector gave pair {index} no score in [0, 1]: {shown(score)}")
            categories, decided_by = item.get("categories", {}), item.get("decided_by")
            if not isinstance(categories, dict) or not all(
                isinstance(level, int | float) for level in categories.values()
            ):
                raise ModelRuntimeError(f"remote detector gave pair {index} categories that are not names with numbers")
            if decided_by is not None and not isinstance(decided_by, str):
                raise ModelRuntimeError(f"remote detector gave pair {index} a decided_by that is no name")
            judgements.append(Judgement(float(score), categories, decided_by))
        return judgements


def _reply(response: httpx.Response, where: str) -> Any:
    """The JSON body of a 2xx reply; any other status is a :class:`ModelRuntimeError` with the server's words."""
    if not response.is_success:
        raise ModelRuntimeError(f"remote detector {where} answered {response.status_code}: {_detail(response)}")
    try:
        return response.json()
    except ValueError as error:
        raise ModelRuntimeError(f"remote detector {where} replied with no JSON: {shown(response.text)}") from error


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return shown(response.text)
    return shown(body.get("detail", body) if isinstance(body, dict) else body)


def _describe(error: Exception) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
