"""Prometheus metrics of the service, in a registry of its own (so several apps in one process never clash)."""

from __future__ import annotations

import collections
import time
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from protector_models.models.batcher import BatchStats

ENDPOINTS = frozenset({"/v1/check", "/v1/protect", "/healthz", "/metrics"})
"""Paths reported by name; any other is reported as ``other`` (labels stay few whatever clients send)."""

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class ServiceMetrics:
    """Requests, pairs, verdicts, latencies and the micro-batcher's batch sizes."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.requests = Counter(
            "mllm_protector_requests",
            "HTTP requests, by endpoint and status code.",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "mllm_protector_request_seconds",
            "HTTP request latency, by endpoint.",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.pairs = Counter(
            "mllm_protector_pairs", "Pairs received, by endpoint.", ["endpoint"], registry=self.registry
        )
        self.flagged = Counter(
            "mllm_protector_flagged", "Pairs flagged harmful, by endpoint.", ["endpoint"], registry=self.registry
        )
        self.unchecked = Counter(
            "mllm_protector_unchecked",
            "Pairs the detector failed to check, by endpoint.",
            ["endpoint"],
            registry=self.registry,
        )
        self.decided = Counter(
            "mllm_protector_decided",
            "Pairs a cascade decided, by endpoint and by the detector that decided (first, second).",
            ["endpoint", "by"],
            registry=self.registry,
        )
        self.batch_pairs = Histogram(
            "mllm_protector_batch_pairs",
            "Pairs per detector call of the micro-batcher.",
            buckets=_SIZE_BUCKETS,
            registry=self.registry,
        )
        self.batch_calls = Histogram(
            "mllm_protector_batch_calls",
            "Calls (requests) served per detector call of the micro-batcher.",
            buckets=_SIZE_BUCKETS,
            registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "mllm_protector_batch_seconds",
            "Time of one detector call of the micro-batcher.",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_failures = Counter(
            "mllm_protector_batch_failures", "Detector calls of the micro-batcher that failed.", registry=self.registry
        )

    def observe_verdicts(self, endpoint: str, verdicts: Iterable[tuple[bool, bool]]) -> None:
        """Count the pairs of one request, given (flagged, checked) per pair."""
        total = flagged = unchecked = 0
        for is_flagged, checked in verdicts:
            total += 1
            flagged += is_flagged and checked
            unchecked += not checked
        self.pairs.labels(endpoint).inc(total)
        self.flagged.labels(endpoint).inc(flagged)
        self.unchecked.labels(endpoint).inc(unchecked)

    def observe_deciders(self, endpoint: str, deciders: Iterable[str | None]) -> None:
        """Count the pairs of one request by the cascade detector that decided them (None: no cascade)."""
        for by, count in collections.Counter(by for by in deciders if by is not None).items():
            self.decided.labels(endpoint, by).inc(count)

    def observe_batch(self, stats: BatchStats) -> None:
        """A micro-batcher observer: one detector call."""
        self.batch_pairs.observe(stats.pairs)
        self.batch_calls.observe(stats.calls)
        self.batch_seconds.observe(stats.seconds)
        if stats.failed:
            self.batch_failures.inc()


class RequestMetrics:
    """ASGI middleware: counts every HTTP request by endpoint and status code, and times it."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        endpoint = path if path in ENDPOINTS else "other"
        status = 500  # what the client gets when the app fails before it answers

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        started = time.perf_counter()
        try:
            await self.app(scope, receive, recording_send)
        finally:
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - started)
            self.metrics.requests.labels(endpoint, str(status)).inc()
