"""Every HTTP request, fast path included: a request id, a count and a duration by
route template and status, and one log line.

The outermost ASGI middleware, so it sees what the publish fast path
(``api.fastpath``) answers as well as FastAPI's routes. The route is the matched
template (``/appointments/{appointment_id}``), never the raw path: a path that no
route matches is counted and logged as ``UNMATCHED``. The log line carries the
request id, the tenant when a token was verified, the route, the method, the status
and the duration; never a query string, a header value, a token or a body.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Collection
from contextvars import ContextVar
from typing import Any, Final

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.limits import route_path
from hub import metrics

log = logging.getLogger("api.request")

UNMATCHED: Final = "UNMATCHED"
# The client went away before an answer: nginx's convention.
CLIENT_CLOSED: Final = 499
REQUEST_ID_HEADER: Final = b"x-request-id"
# A caller's request id is kept when it is short and plain; otherwise a new one.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

http_requests = Counter(
    "hub_http_requests",
    "HTTP requests answered, by method, route template and status.",
    ["method", "route", "status"],
    registry=metrics.REGISTRY,
)
http_duration = Histogram(
    "hub_http_request_duration_seconds",
    "HTTP request duration, from the request to the last byte of the answer.",
    ["method", "route"],
    buckets=metrics.LATENCY_BUCKETS,
    registry=metrics.REGISTRY,
)


class RequestContext:
    """What the request's handlers learn about it, for its log line."""

    __slots__ = ("request_id", "tenant")

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.tenant: str | None = None


_current: ContextVar[RequestContext | None] = ContextVar("hub_request", default=None)


def note_tenant(tenant: str) -> None:
    """The request's token was verified and names ``tenant``."""
    context = _current.get()
    if context is not None:
        context.tenant = tenant


def request_id_from(headers: list[tuple[bytes, bytes]]) -> str:
    for name, value in headers:
        if name == REQUEST_ID_HEADER:
            candidate = value.decode("latin-1")
            if _SANE_REQUEST_ID.fullmatch(candidate):
                return candidate
            break
    return uuid.uuid4().hex


class RequestObserver:
    """``fixed_routes``: paths answered ahead of the router (the fast path), which
    are their own templates."""

    def __init__(self, app: ASGIApp, *, fixed_routes: Collection[str] = ()) -> None:
        self.app = app
        self.fixed_routes = frozenset(fixed_routes)
        # (method, route, status) -> children, made once each: labels() takes a lock.
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._timers: dict[tuple[str, str], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        context = RequestContext(request_id_from(scope["headers"]))
        token = _current.set(context)
        header = (REQUEST_ID_HEADER, context.request_id.encode("latin-1"))
        status = CLIENT_CLOSED

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [h for h in message.get("headers", []) if h[0] != REQUEST_ID_HEADER]
                message = {**message, "headers": [*headers, header]}
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        except BaseException:
            status = 500  # Starlette's error middleware, outside this one, answers
            raise
        finally:
            _current.reset(token)
            self._record(scope, context, status, time.perf_counter() - started)

    def _route(self, scope: Scope) -> str:
        route = scope.get("route")
        template = getattr(route, "path", None)
        if isinstance(template, str):
            # A mount (the web app at "/") answers everything below it.
            return template if hasattr(route, "endpoint") else f"{template}/*"
        path = route_path(scope)
        return path if path in self.fixed_routes else UNMATCHED

    def _record(self, scope: Scope, context: RequestContext, status: int, seconds: float) -> None:
        method = scope["method"] if scope["method"] in _METHODS else "OTHER"
        route = self._route(scope)
        key = (method, route, status)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = http_requests.labels(method, route, str(status))
        counter.inc()
        timer = self._timers.get(key[:2])
        if timer is None:
            timer = self._timers[key[:2]] = http_duration.labels(method, route)
        timer.observe(seconds)
        log.info(
            "request",
            extra={
                "requestId": context.request_id,
                "tenant": context.tenant,
                "route": route,
                "method": method,
                "status": status,
                "durationMs": round(seconds * 1000, 3),
            },
        )
