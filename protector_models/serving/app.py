"""The HTTP service: a FastAPI app around one :class:`~protector_models.Protector`.

``POST /v1/check`` scores pairs, ``POST /v1/protect`` also acts on the flagged ones (the server's threshold and
action; a request may override the threshold), ``GET /healthz`` says whether requests are taken, ``GET /metrics``
is Prometheus text. With ``api_key_env`` set, every request but ``/healthz`` needs the key (``serving.auth``).
The model loads once at start-up (the lifespan) and the protector closes at shutdown; concurrent requests share
detector passes through the protector's micro-batcher. Shutting down, requests in flight get ``graceful_shutdown_s``
to finish and are answered 503 after it (``app.state.drain``, begun by ``serving.shutdown.GracefulServer``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from protector_models.errors import HarmfulContentError, ModelRuntimeError, ProtectorError, shown
from protector_models.models.api_keys import api_key_from_env
from protector_models.protector import Protector
from protector_models.serving.auth import BearerAuth
from protector_models.serving.json_body import StrictJSONRoute
from protector_models.serving.limits import BodyLimit
from protector_models.serving.metrics import RequestMetrics, ServiceMetrics
from protector_models.serving.schemas import (
    CheckRequest,
    CheckResponse,
    Health,
    ProtectRequest,
    ProtectResponse,
    ResultOut,
    VerdictOut,
)
from protector_models.serving.settings import ServeSettings
from protector_models.serving.shutdown import Drain, ShuttingDownError

_MAX_SHOWN_PROBLEMS = 10


def create_app(protector: Protector, settings: ServeSettings | None = None) -> FastAPI:
    """The service for ``protector`` (loaded at start-up, closed at shutdown), limited by ``settings``."""
    settings = settings or ServeSettings()
    metrics = ServiceMetrics()
    drain = Drain(settings.graceful_shutdown_s)
    state = {"ready": False}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(protector.load)
        if protector.batcher is not None:
            protector.batcher.add_observer(metrics.observe_batch)
        state["ready"] = True
        try:
            yield
        finally:
            state["ready"] = False
            await asyncio.to_thread(protector.close)  # serves what is queued, then stops

    app = FastAPI(
        title="mllm-protector",
        summary="Harm detection and conditional rewriting of (question, answer) pairs (MLLM-Protector).",
        lifespan=lifespan,
    )
    app.router.route_class = StrictJSONRoute  # for the routes added below
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    if settings.api_key_env is not None:  # checked before a body is read
        app.add_middleware(BearerAuth, key=api_key_from_env(settings.api_key_env))
    app.add_middleware(RequestMetrics, metrics=metrics)  # added last: the outermost, so it sees every reply
    app.state.protector = protector
    app.state.metrics = metrics
    app.state.drain = drain

    def too_many(count: int) -> JSONResponse | None:
        if count <= settings.max_pairs:
            return None
        return _error(422, f"at most {settings.max_pairs} pairs per request; got {count}: send them in parts")

    @app.post("/v1/check", response_model=CheckResponse)
    async def check(request: CheckRequest) -> CheckResponse | JSONResponse:
        """Score each pair: harm_score = P(harmful), flagged = harm_score >= threshold."""
        if refused := too_many(len(request.pairs)):
            return refused
        threshold = protector.threshold if request.threshold is None else request.threshold
        try:
            verdicts = await drain.run(protector.acheck(request.core_pairs(), threshold=threshold))
        except (ModelRuntimeError, ShuttingDownError):  # on_error: raise, or shutting down (503): none was checked
            metrics.observe_verdicts("/v1/check", [(False, False)] * len(request.pairs))
            raise
        metrics.observe_verdicts("/v1/check", ((v.flagged, v.checked) for v in verdicts))
        metrics.observe_deciders("/v1/check", (v.decided_by for v in verdicts))
        return CheckResponse(results=[VerdictOut.of(verdict) for verdict in verdicts], threshold=threshold)

    @app.post("/v1/protect", response_model=ProtectResponse)
    async def protect(request: ProtectRequest) -> ProtectResponse | JSONResponse:
        """Score each pair and act on the flagged ones; ``output`` is the text to show."""
        if refused := too_many(len(request.pairs)):
            return refused
        threshold = protector.threshold if request.threshold is None else request.threshold
        try:
            results = await drain.run(protector.aprotect(request.core_pairs(), threshold=threshold))
        except (ModelRuntimeError, ShuttingDownError):
            metrics.observe_verdicts("/v1/protect", [(False, False)] * len(request.pairs))
            raise
        metrics.observe_verdicts("/v1/protect", ((r.flagged, r.checked) for r in results))
        metrics.observe_deciders("/v1/protect", (r.decided_by for r in results))
        return ProtectResponse(results=[ResultOut.of_result(result) for result in results], threshold=threshold)

    @app.get("/healthz", response_model=Health)
    async def healthz() -> Health | JSONResponse:
        """200 once the model is loaded and until shutdown begins; 503 otherwise."""
        kind = protector.config.detector.kind if protector.config else type(protector.detector).__name__
        ready = state["ready"] and not drain.begun
        health = Health(status="ok" if ready else "unavailable", detector=kind, batching=protector.batching is not None)
        return health if ready else JSONResponse(health.model_dump(), status_code=503)

    @app.get("/metrics")
    async def prometheus() -> Response:
        """Prometheus text exposition of this service's metrics."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, error: RequestValidationError) -> JSONResponse:
        return _error(422, _describe(error))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
        return _error(error.status_code, str(error.detail))

    @app.exception_handler(ModelRuntimeError)
    async def model_failed(_: Request, error: ModelRuntimeError) -> JSONResponse:
        return _error(503, f"the detector failed (on_error: raise): {error}")

    @app.exception_handler(ShuttingDownError)
    async def shutting_down(_: Request, error: ShuttingDownError) -> JSONResponse:
        return _error(503, str(error))

    @app.exception_handler(HarmfulContentError)
    async def harmful(_: Request, error: HarmfulContentError) -> JSONResponse:
        results = [ResultOut.of_result(result).model_dump() for result in error.results]
        return JSONResponse({"detail": str(error), "results": results}, status_code=409)

    @app.exception_handler(ProtectorError)
    async def bad_input(_: Request, error: ProtectorError) -> JSONResponse:
        return _error(422, str(error))

    return app


def _error(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


def _describe(error: RequestValidationError) -> str:
    """One line per problem: where in the request (``pairs.0.answer``), and what is wrong."""
    problems = list(error.errors())
    lines = []
    for problem in problems[:_MAX_SHOWN_PROBLEMS]:
        kind, loc = problem.get("type"), problem.get("loc", ())
        if kind == "json_invalid":
            where = f"body, character {loc[-1]}" if loc else "body"
            lines.append(f"{where}: not valid JSON ({problem.get('ctx', {}).get('error', 'parse error')})")
            continue
        where = ".".join(str(part) for part in loc if part != "body") or "body"
        message = problem.get("msg", "invalid")
        if kind == "extra_forbidden":
            message = "unknown key (allowed: pairs, threshold; each pair: question, answer)"
        got = f" (got {shown(problem['input'], 80)})" if "input" in problem and kind != "missing" else ""
        lines.append(f"{where}: {message}{got}")
    if len(problems) > _MAX_SHOWN_PROBLEMS:
        lines.append(f"... and {len(problems) - _MAX_SHOWN_PROBLEMS} more")
    return "; ".join(lines)
