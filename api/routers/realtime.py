"""Broker credentials for a browser session, and the public keys that verify them."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Body, Request, Response

from api.deps import DbSession, RuntimeDep, SignedIn
from api.errors import Invalid, NotFound
from api.rate_limits import rate_limits
from api.schemas import CredentialsOut, CredentialsRequest
from hub.broker_tokens import notifications_acl
from hub.credentials import SessionNotFoundError
from hub.outbox import latest_seq
from hub.topics import tenant_prefix

router = APIRouter(prefix="/realtime", tags=["realtime"])


@router.post("/credentials", response_model=CredentialsOut)
async def issue_credentials(
    user: SignedIn,
    runtime: RuntimeDep,
    db: DbSession,
    request: Request,
    body: CredentialsRequest | None = Body(default=None),  # noqa: B008
) -> CredentialsOut:
    """New credentials; or, with ``clientId`` of a live session of the caller, a new
    password and expiry for that same client id (its persistent session survives). A
    user with no role of the hub gets a session that reads its own notifications only.
    Both count against the caller's credentials rate limit."""
    rate_limits(request).check("credentials", tenant=user.tenant, caller="user", caller_id=user.sub)
    acl = None if user.roles else notifications_acl(user.tenant, user.sub)
    try:
        if body is not None and body.client_id:
            issued = await runtime.issuer.renew(
                tenant=user.tenant,
                user_id=user.sub,
                client_id=body.client_id,
                not_after=user.expires_at,
                acl=acl,
            )
        else:
            issued = await runtime.issuer.issue(
                tenant=user.tenant, user_id=user.sub, not_after=user.expires_at, acl=acl
            )
    except SessionNotFoundError:
        raise NotFound("no live session with that clientId for this user") from None
    except ValueError as exc:
        raise Invalid(str(exc)) from None
    return CredentialsOut(
        client_id=issued.client_id,
        username=issued.username,
        password=issued.password,
        expires_at=issued.expires_at,
        websocket_url=runtime.settings.websocket_url,
        mqtt_url=runtime.settings.mqtt_url,
        topic_prefix=tenant_prefix(user.tenant),
        latest_seq=await anyio.to_thread.run_sync(latest_seq, db, user.tenant),
    )


@router.delete("/credentials/{client_id}", status_code=204)
async def revoke_credentials(client_id: str, user: SignedIn, runtime: RuntimeDep) -> Response:
    """Revoke a browser session: the caller's own, or any of the tenant's for an
    admin. The broker disconnects it at once. Kiosks and partners are not sessions:
    they are disabled or removed through their own routes, which also refuse their
    secrets (a revocation alone would only lock them out until it runs out)."""
    try:
        await runtime.issuer.revoke(
            tenant=user.tenant,
            client_id=client_id,
            user_id=None if user.has_any("admin") else user.sub,
            by=(user.sub, "user"),
            kind="session",
        )
    except SessionNotFoundError:
        raise NotFound(f"session {client_id} not found") from None
    return Response(status_code=204)


@router.get("/jwks")
async def jwks(runtime: RuntimeDep) -> dict[str, Any]:
    """The public keys of broker tokens (a JWKS), for any broker that verifies them,
    for example an EMQX cluster's JWT authenticator. No token needed: public keys."""
    return runtime.keys.jwks()
