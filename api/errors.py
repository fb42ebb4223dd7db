"""HTTP errors: one JSON shape, ``{"error": code, "message": text, "details"?: [...]}``."""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException

from hub.db import database_away
from hub.errors import (
    BrokerUnavailableError,
    DynsecError,
    EventValidationError,
    TokenError,
    UnknownPatientsError,
    WriterClosedError,
    WriterOverloadedError,
)

log = logging.getLogger("api.errors")


class ApiError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class NotFound(ApiError):
    status, code = 404, "not_found"


class Conflict(ApiError):
    status, code = 409, "conflict"


class Forbidden(ApiError):
    status, code = 403, "forbidden"


class Unauthorized(ApiError):
    status, code = 401, "unauthorized"


class Invalid(ApiError):
    status, code = 422, "invalid_request"


class Gone(ApiError):
    status, code = 410, "gone"


class RateLimited(ApiError):
    """Over a rate limit (api.rate_limits): nothing was done; retry after the delay."""

    status, code = 429, "rate_limited"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def error_response(
    status: int,
    code: str,
    message: str,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"error": code, "message": message}
    if details:
        body["details"] = details
    return JSONResponse(body, status_code=status, headers=headers)


def _clean(errors: Any) -> list[dict[str, Any]]:
    out = []
    for e in errors:
        loc = [p for p in e.get("loc", ()) if p != "body"]
        out.append({"field": ".".join(str(p) for p in loc), "message": e.get("msg", "")})
    return out


def _malformed() -> JSONResponse:
    return error_response(422, "malformed_json", "the request body is not valid JSON")


async def _unauthorized(request: Request) -> JSONResponse | None:
    """FastAPI parses a JSON body before it resolves the route's dependencies, so a
    malformed body would answer 422 to a caller without a valid token. Answer 401."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None or not _needs_token(dependant):
        return None
    from api.deps import principal_from_header  # deps imports this module

    try:
        await principal_from_header(
            request.app.state.runtime, request.headers.get("authorization", "")
        )
    except (Unauthorized, TokenError) as exc:
        return error_for(exc)
    return None


def _needs_token(dependant: Any) -> bool:
    from api.deps import get_event_reader, get_signed_in  # deps imports this module

    return any(
        d.call in (get_signed_in, get_event_reader) or _needs_token(d)
        for d in getattr(dependant, "dependencies", [])
    )


def error_for(exc: Exception) -> JSONResponse | None:
    """The JSON error for one of the hub's own exceptions, None for anything else.
    Shared by the exception handlers and the publishing fast path (api.fastpath)."""
    if isinstance(exc, RateLimited):
        return error_response(
            429, exc.code, exc.message, headers={"Retry-After": str(exc.retry_after)}
        )
    if isinstance(exc, ApiError):
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return error_response(exc.status, exc.code, exc.message, exc.details, headers)
    if isinstance(exc, TokenError):
        return error_response(401, "unauthorized", str(exc), headers={"WWW-Authenticate": "Bearer"})
    if isinstance(exc, EventValidationError):
        details = [
            {"field": ".".join(str(p) for p in e.get("loc", [])), "message": str(e.get("msg"))}
            for e in exc.errors
        ]
        return error_response(
            422, "invalid_event", f"invalid payload for {exc.event_type}", details
        )
    if isinstance(exc, BrokerUnavailableError):
        log.warning("broker unavailable: %s", exc)
    for kind, (code, message, retry_after) in _RETRY_LATER.items():
        if isinstance(exc, kind):
            return error_response(503, code, message, headers={"Retry-After": retry_after})
    if isinstance(exc, UnknownPatientsError):
        ids = exc.patient_ids
        message = (
            f"patient {ids[0]} not found"
            if len(ids) == 1
            else f"patients not found: {', '.join(ids)}"
        )
        return error_response(404, "not_found", message)
    if isinstance(exc, DynsecError):
        log.error("broker refused an administration command: %s", exc)
        return error_response(503, "broker_error", "the message broker refused the request")
    if isinstance(exc, _DATABASE_ERRORS) and database_away(exc):
        # Logged without the exception's text: it may quote SQL parameters.
        log.warning("database unavailable: %s", _error_name(exc))
        return error_response(
            503,
            "database_unavailable",
            "the database is not reachable or busy; retry shortly",
            headers={"Retry-After": "2"},
        )
    return None


# 503s that say when to try again: error code, message, Retry-After seconds.
_RETRY_LATER: dict[type[Exception], tuple[str, str, str]] = {
    BrokerUnavailableError: (
        "broker_unavailable",
        "the message broker is not reachable; retry shortly",
        "2",
    ),
    WriterOverloadedError: (
        "overloaded",
        "too many events are waiting to be written; retry after a moment",
        "1",
    ),
    WriterClosedError: ("shutting_down", "this api process is stopping; retry", "1"),
}


# Handled only when ``database_away`` says so; otherwise a 500 with its traceback.
_DATABASE_ERRORS: tuple[type[Exception], ...] = (
    sa_exc.OperationalError,
    sqlite3.OperationalError,
    psycopg.OperationalError,
)


def _error_name(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    return str(
        getattr(orig, "sqlite_errorname", None)
        or getattr(orig, "sqlstate", None)
        or type(orig).__name__
    )


_HUB_ERRORS: tuple[type[Exception], ...] = (
    ApiError,
    TokenError,
    EventValidationError,
    BrokerUnavailableError,
    WriterOverloadedError,
    WriterClosedError,
    UnknownPatientsError,
    DynsecError,
    *_DATABASE_ERRORS,
)


def install_error_handlers(app: FastAPI) -> None:
    async def _hub_error(_: Request, exc: Exception) -> JSONResponse:
        response = error_for(exc)
        if response is None:  # a database error that is not "away": a 500, as any bug
            raise exc
        return response

    for kind in _HUB_ERRORS:
        app.add_exception_handler(kind, _hub_error)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return await _unauthorized(request) or _malformed()
        return error_response(422, "invalid_request", "the request is invalid", _clean(errors))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and isinstance(exc.__cause__, (ValueError, RecursionError)):
            # FastAPI's "error parsing the body", e.g. a body that is not UTF-8.
            return await _unauthorized(request) or _malformed()
        codes = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}
        return error_response(exc.status_code, codes.get(exc.status_code, "error"), str(exc.detail))
