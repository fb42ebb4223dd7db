"""Integration partners: registration and grants by an admin, secrets, removal, and the
partner's own scoped broker credentials and access token (contract, section 11)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import Field
from sqlalchemy.exc import IntegrityError

from api.deps import Admin, DbSession, RuntimeDep
from api.domain import partners
from api.errors import Unauthorized
from api.models import Partner
from api.rate_limits import rate_limits
from api.schemas import Body, Id, Out
from hub.broker_tokens import sign_access_token
from hub.credentials import IssuedCredentials, SessionNotFoundError
from hub.db import utcnow
from hub.grants import grant_filters, partner_acl
from hub.outbox import latest_seq
from hub.topics import tenant_prefix

router = APIRouter(prefix="/partners", tags=["partners"])
_bearer = HTTPBearer(auto_error=False)
_REFUSED = "unknown partner secret, or the partner was removed"


class PartnerCreate(Body):
    id: str = Id
    name: str = Field(min_length=1, max_length=100)
    event_types: list[str] = Field(min_length=1, max_length=64)


class PartnerCredentialsOut(Out):
    client_id: str
    username: str
    password: str
    expires_at: datetime
    websocket_url: str
    mqtt_url: str
    topic_prefix: str
    latest_seq: int
    kind: str
    tenant: str
    partner_id: str
    # The exact topic filters the broker lets this partner subscribe to.
    filters: list[str]
    # For GET /events: returns the granted types only. Expires with the credentials.
    access_token: str


@router.post("", status_code=201)
def register(body: PartnerCreate, user: Admin, db: DbSession) -> dict[str, Any]:
    """A new partner with the event types it may receive, and its secret: shown once."""
    partner, secret = partners.register(
        db,
        tenant=user.tenant,
        actor=user.sub,
        partner_id=body.id,
        name=body.name,
        event_types=body.event_types,
    )
    return {**partners.partner_json(partner), "secret": secret}


@router.get("")
def list_partners(user: Admin, db: DbSession) -> list[dict[str, Any]]:
    """The tenant's partners, never their secrets."""
    return [partners.partner_json(p) for p in partners.list_partners(db, user.tenant)]


@router.post("/{partner_id}/secret", status_code=201)
def rotate_secret(partner_id: str, user: Admin, db: DbSession) -> dict[str, Any]:
    """A new secret, shown once; the previous one keeps working for 24 hours."""
    partner, secret = partners.rotate_secret(
        db, tenant=user.tenant, actor=user.sub, partner_id=partner_id
    )
    return {**partners.partner_json(partner), "secret": secret}


@router.delete("/{partner_id}", status_code=204)
async def remove(partner_id: str, user: Admin, db: DbSession, runtime: RuntimeDep) -> Response:
    """Remove a partner: its secrets and access tokens are refused from now on, and the
    broker closes its connection (a revocation of its client id). Idempotent: again on
    a removed partner, it only revokes whatever is still live."""
    await anyio.to_thread.run_sync(
        lambda: partners.remove(db, tenant=user.tenant, actor=user.sub, partner_id=partner_id)
    )
    await runtime.issuer.revoke_client_ids(
        user.tenant, [partners.client_id_for(user.tenant, partner_id)], by=(user.sub, "user")
    )
    return Response(status_code=204)


async def _issue(runtime: RuntimeDep, partner: Partner) -> IssuedCredentials:
    """Credentials on the partner's one client id: a new one, or the live one renewed."""
    tenant = partner.tenant
    ttl = timedelta(seconds=runtime.settings.partner_credentials_ttl_seconds)

    async def issue() -> IssuedCredentials:
        return await runtime.issuer.issue(
            tenant=tenant,
            user_id=partner.id,
            not_after=utcnow() + ttl,
            kind="partner",
            acl=partner_acl(tenant, partner.event_types),
            ttl=ttl,
            client_id=partners.client_id_for(tenant, partner.id),
        )

    try:
        try:
            return await issue()
        except IntegrityError:
            # A concurrent first request of the same partner recorded the client id
            # first: now there is a row to extend.
            return await issue()
    except SessionNotFoundError:
        # The client id was revoked and its revocation has not run out: a removal won.
        raise Unauthorized(_REFUSED) from None


@router.post("/credentials", response_model=PartnerCredentialsOut)
async def credentials(
    runtime: RuntimeDep,
    db: DbSession,
    request: Request,
    auth: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> PartnerCredentialsOut:
    """Broker credentials for the partner whose secret this is: kind ``partner``, the
    same client id every time, an acl of exactly the granted types' topic filters, and
    an access token for ``GET /events``. No failure limit: a secret has 256 bits."""
    if auth is None or auth.scheme.lower() != "bearer":
        raise Unauthorized("missing partner secret")
    partner: Partner | None = await anyio.to_thread.run_sync(
        partners.authenticate, db, auth.credentials
    )
    if partner is None:
        raise Unauthorized(_REFUSED)
    tenant = partner.tenant
    rate_limits(request).check("credentials", tenant=tenant, caller="partner", caller_id=partner.id)
    # Let through: only now is it seen (a refused request changes nothing).
    await anyio.to_thread.run_sync(partners.seen, db, tenant, partner.id)
    issued = await _issue(runtime, partner)
    # A removal that committed while this was issued may have revoked the client id
    # before this credential existed: look again, and revoke once more if so.
    if await anyio.to_thread.run_sync(partners.granted, db, tenant, partner.id) is None:
        await runtime.issuer.revoke_client_ids(tenant, [issued.client_id])
        raise Unauthorized(_REFUSED)
    access = sign_access_token(
        runtime.signer,
        kind="partner",
        tenant=tenant,
        sub=partner.id,
        expires_at=issued.expires_at,
    )
    return PartnerCredentialsOut(
        client_id=issued.client_id,
        username=issued.username,
        password=issued.password,
        expires_at=issued.expires_at,
        websocket_url=runtime.settings.websocket_url,
        mqtt_url=runtime.settings.mqtt_url,
        topic_prefix=tenant_prefix(tenant),
        latest_seq=await anyio.to_thread.run_sync(latest_seq, db, tenant),
        kind="partner",
        tenant=tenant,
        partner_id=partner.id,
        filters=grant_filters(tenant, partner.event_types),
        access_token=access.token,
    )
