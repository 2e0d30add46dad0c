"""Reading request bodies as strictly as ``scan`` reads its input: a key given twice (``{"answer": "benign",
"answer": "..."}`` would be judged on the last), an integer too long to convert, or nesting too deep is a 422 that
says so, never a silent choice or a bare 400."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

from protector_models.data.strict_json import StrictJSONError, loads_strictly


class _StrictJSONRequest(Request):
    async def json(self) -> Any:
        """The body as JSON; a syntax error stays a ``JSONDecodeError`` (FastAPI's 422 with its position)."""
        if not hasattr(self, "_json"):
            try:
                self._json = loads_strictly(await self.body())
            except StrictJSONError as error:
                raise HTTPException(422, f"body: {error}") from None
        return self._json


class StrictJSONRoute(APIRoute):
    """A route whose JSON body is read with :func:`~protector_models.data.strict_json.loads_strictly`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict_handler(request: Request) -> Response:
            return await handler(_StrictJSONRequest(request.scope, request.receive))

        return strict_handler
