"""Refusing requests without the service's key (401), so a service reachable from a network is not open to it.

The key is read from an environment variable named in the settings (never written in a config file); clients
send it as ``Authorization: Bearer KEY``. ``GET /healthz`` stays open for load balancers and orchestrators.
"""

from __future__ import annotations

import hmac

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

OPEN_PATHS = frozenset({"/healthz"})


class BearerAuth:
    """ASGI middleware: a request without ``Authorization: Bearer <key>`` gets 401, except on open paths. The
    key is compared in constant time."""

    def __init__(self, app: ASGIApp, key: str) -> None:
        self.app = app
        self.expected = f"Bearer {key}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        sent = Headers(scope=scope).get("authorization", "").encode()
        if not hmac.compare_digest(sent, self.expected):
            detail = "missing or wrong API key: send the service's key as 'Authorization: Bearer KEY'"
            response = JSONResponse({"detail": detail}, status_code=401, headers={"www-authenticate": "Bearer"})
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
