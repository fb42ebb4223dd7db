"""``POST /events`` and ``POST /events/batch`` without FastAPI's routing, dependency
and middleware layers.

Profiled under load (py-spy, docs/benchmarks.md), those layers took about half of the
api's CPU per published event; the event itself needs a token check, one model
validation and a hand-off to the writer. This ASGI middleware answers exactly those
two routes, with the same answers as the routes in api/routers/events.py, which stay
for the OpenAPI schema and for any request the fast path passes on (a body not
declared as JSON, or an empty one): the same checks in the same order (malformed
JSON, then the token, then the role, then the body), the same error bodies
(``api.errors.error_for``), the same 202 bodies, the same rate limit (after the body,
counting a batch's events: one lookup per bucket and some arithmetic).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import CONNECTION_HEADER, principal_from_header
from api.errors import Forbidden, _clean, _malformed, error_for, error_response
from api.limits import route_path
from api.rate_limits import RateLimits
from api.routers.events import PUBLISHERS, _prepare_all, _published
from api.runtime import Runtime
from api.schemas import PublishBatch, PublishEvent
from hub.envelope import parse_origin
from hub.tokens import Principal

_MALFORMED = object()
_ORIGIN_HEADER = CONNECTION_HEADER.lower().encode("latin-1")

_ROUTES: dict[str, tuple[type[BaseModel], bool]] = {
    "/events": (PublishEvent, False),
    "/events/batch": (PublishBatch, True),
}
# The paths it may answer itself: each is its own route template (api.observe).
ROUTE_PATHS = frozenset(_ROUTES)


class PublishFastPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = _ROUTES.get(route_path(scope)) if scope["type"] == "http" else None
        if route is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers: dict[bytes, bytes] = {}
        for name, value in scope["headers"]:
            headers.setdefault(name, value)  # the first of repeated headers, as Starlette
        media_type = headers.get(b"content-type", b"").split(b";", 1)[0].strip().lower()
        if media_type != b"application/json":
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        if body is None:  # the client went away
            return
        if not body:
            await self.app(scope, _replay(body, receive), send)
            return
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested too deep
            data = _MALFORMED
        if not isinstance(data, dict) and data is not _MALFORMED:
            # Not an object: FastAPI's own validation messages, from the route.
            await self.app(scope, _replay(body, receive), send)
            return
        state = scope["app"].state
        runtime: Runtime = state.runtime
        try:
            response = await self._answer(runtime, state.rate_limits, headers, data, *route)
        except Exception as exc:
            answer = error_for(exc)
            if answer is None:
                raise  # a bug: Starlette's error middleware answers 500, as for any route
            response = answer
        await response(scope, receive, send)

    async def _answer(
        self,
        runtime: Runtime,
        limits: RateLimits,
        headers: dict[bytes, bytes],
        data: Any,
        model: type[BaseModel],
        batch: bool,
    ) -> Response:
        if data is _MALFORMED:
            await _principal(runtime, headers)  # no valid token: 401, not 422
            return _malformed()
        user = await _principal(runtime, headers)
        if not user.has_any(*PUBLISHERS):
            raise Forbidden(f"requires one of the roles: {', '.join(PUBLISHERS)}")
        try:
            parsed = model.model_validate(data)
        except ValidationError as exc:
            details = _clean(exc.errors(include_url=False, include_input=False))
            return error_response(422, "invalid_request", "the request is invalid", details)
        origin = (
            parse_origin(headers[_ORIGIN_HEADER].decode("latin-1"))
            if _ORIGIN_HEADER in headers
            else None
        )
        count = len(parsed.events) if isinstance(parsed, PublishBatch) else 1
        limits.check("writes", tenant=user.tenant, caller="user", caller_id=user.sub, cost=count)
        if batch:
            assert isinstance(parsed, PublishBatch)
            prepared = await _prepare_all(parsed.events, user, runtime, batch=True, origin=origin)
            emitted = await runtime.writer.write(prepared)
            out: dict[str, Any] = {
                "events": [_published(e).model_dump(by_alias=True) for e in emitted]
            }
        else:
            assert isinstance(parsed, PublishEvent)
            prepared = await _prepare_all([parsed], user, runtime, batch=False, origin=origin)
            (one,) = await runtime.writer.write(prepared)
            out = _published(one).model_dump(by_alias=True)
        return JSONResponse(out, status_code=202)


async def _principal(runtime: Runtime, headers: dict[bytes, bytes]) -> Principal:
    return await principal_from_header(
        runtime, headers.get(b"authorization", b"").decode("latin-1")
    )


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body already read, then the connection's own messages (a disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
