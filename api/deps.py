"""Request dependencies, as ``Annotated`` aliases routes can declare."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.domain.partners import granted
from api.errors import Forbidden, Unauthorized
from api.observe import note_tenant
from api.runtime import Runtime
from hub.broker_tokens import is_access_token
from hub.envelope import parse_origin
from hub.grants import granted_types
from hub.outbox import set_origin
from hub.tokens import Principal

_bearer = HTTPBearer(auto_error=False)


# The dependencies every route shares are coroutines: a plain function would cost each
# request a hop to the thread pool and back per dependency.
async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


# The header a client names its broker connection with on every write.
CONNECTION_HEADER = "X-Hub-Connection"


async def get_origin(request: Request) -> str | None:
    """The caller's broker client id from ``X-Hub-Connection``, or None when it sent
    none or a malformed one (ignored, never an error)."""
    return parse_origin(request.headers.get(CONNECTION_HEADER))


Origin = Annotated[str | None, Depends(get_origin)]


def get_db(runtime: RuntimeDep, request: Request, origin: Origin) -> Iterator[Session]:
    """A session; routes commit explicitly before they answer, anything else rolls
    back. GET requests only read, so they do not wait behind writers (SQLite). The
    events a write emits carry the caller's connection as their ``origin``."""
    factory = runtime.read_sessions if request.method == "GET" else runtime.sessions
    with factory() as session:
        if request.method != "GET":
            set_origin(session, origin)
        yield session


DbSession = Annotated[Session, Depends(get_db)]


async def verified(runtime: Runtime, token: str) -> Principal:
    """The principal of a bearer token: remembered, or verified in a thread (verifying
    may fetch a JWKS over the network: not on the event loop)."""
    principal = runtime.verifier.cached(token)
    if principal is None:
        principal = await run_in_threadpool(runtime.verifier.verify, token)
    note_tenant(principal.tenant)  # for the request's log line
    return principal


async def principal_from_header(runtime: Runtime, authorization: str) -> Principal:
    """The caller named by an ``Authorization`` header value, read as ``HTTPBearer``
    and ``get_principal`` read it, for code that runs outside FastAPI's dependencies."""
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("missing bearer token")
    return await verified(runtime, token)


async def get_signed_in(
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("missing bearer token")
    return await verified(runtime, credentials.credentials)


# Anyone with a valid token, even with no role the hub knows (an identity provider's
# "nurse" that nobody mapped): only their own notifications and alerts.
SignedIn = Annotated[Principal, Depends(get_signed_in)]


def _staff(principal: Principal) -> Principal:
    if not principal.roles:
        raise Forbidden(
            "this token has no role of the hub (front_desk, provider, billing, admin, "
            "service); an admin can map the identity provider's roles (HUB_JWT_ROLE_MAP)"
        )
    return principal


async def get_principal(principal: SignedIn) -> Principal:
    return _staff(principal)


# A signed-in user with at least one of the hub's roles: what reads clinic data needs.
CurrentUser = Annotated[Principal, Depends(get_principal)]


@dataclass(frozen=True, slots=True)
class EventReader:
    """Who reads events: a signed-in user (every type of the tenant) or a partner
    holding an access token (only the types granted to it, read at each request)."""

    tenant: str
    sub: str
    kind: Literal["user", "partner"]
    allowed_types: frozenset[str] | None  # None: every type


async def get_event_reader(
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> EventReader:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("missing bearer token")
    token = credentials.credentials
    if not is_access_token(token):
        user = _staff(await verified(runtime, token))
        return EventReader(user.tenant, user.sub, "user", None)

    def check() -> list[str] | None:
        claims = runtime.access_verifier.verify(token)
        with runtime.read_sessions() as session:
            grant = granted(session, claims.tenant, claims.sub)
        if grant is None:
            return None
        return [claims.tenant, claims.sub, *grant]

    found = await run_in_threadpool(check)
    if found is None:
        raise Unauthorized("the partner was removed")
    tenant, sub, *grant = found
    note_tenant(tenant)
    return EventReader(tenant, sub, "partner", granted_types(grant))


Reader = Annotated[EventReader, Depends(get_event_reader)]


def require_roles(*roles: str) -> Callable[[Principal], Awaitable[Principal]]:
    async def check(principal: CurrentUser) -> Principal:
        if not principal.has_any(*roles):
            raise Forbidden(f"requires one of the roles: {', '.join(roles)}")
        return principal

    return check


Clinical = Annotated[Principal, Depends(require_roles("front_desk", "provider", "admin"))]
Clinician = Annotated[Principal, Depends(require_roles("provider", "admin"))]
Provider = Annotated[Principal, Depends(require_roles("provider"))]
# Lab integrations post results as a service; staff may enter one from a paper report.
ResultEntry = Annotated[Principal, Depends(require_roles("service", "provider", "admin"))]
Billing = Annotated[Principal, Depends(require_roles("billing", "admin"))]
# Claim and prior-auth decisions also come from clearinghouse and payer integrations.
PayerDecision = Annotated[Principal, Depends(require_roles("billing", "admin", "service"))]
Cashier = Annotated[Principal, Depends(require_roles("front_desk", "billing", "admin"))]
Requester = Annotated[Principal, Depends(require_roles("provider", "billing", "admin"))]
Admin = Annotated[Principal, Depends(require_roles("admin"))]
ServiceOrAdmin = Annotated[Principal, Depends(require_roles("service", "admin"))]
