"""Kiosk check-in devices: registration by an admin, enrollment by the device, and the
device's broker credentials (contract, section 10)."""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import deque
from datetime import datetime, timedelta
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import Field
from sqlalchemy.exc import IntegrityError

from api.deps import Admin, DbSession, RuntimeDep
from api.domain import kiosks
from api.errors import ApiError, Unauthorized
from api.models import Kiosk
from api.rate_limits import rate_limits
from api.schemas import Body, Id, Out
from hub.broker_tokens import kiosk_acl
from hub.credentials import SessionNotFoundError
from hub.db import utcnow
from hub.topics import kiosk_requests_topic, kiosk_responses_topic, tenant_prefix

log = logging.getLogger("api.kiosks")
router = APIRouter(prefix="/kiosks", tags=["kiosks"])
_bearer = HTTPBearer(auto_error=False)


class TooManyAttempts(ApiError):
    status, code = 429, "too_many_requests"


class KioskCreate(Body):
    id: str = Id
    name: str = Field(min_length=1, max_length=100)
    location_id: str = Id


class EnrollRequest(Body):
    enrollment_code: str = Field(min_length=1, max_length=64)


class EnrollOut(Out):
    tenant: str
    kiosk_id: str
    device_secret: str


class KioskCredentialsOut(Out):
    client_id: str
    username: str
    password: str
    expires_at: datetime
    websocket_url: str
    mqtt_url: str
    topic_prefix: str
    latest_seq: int
    # Where this kiosk publishes its requests and reads the answers.
    request_topic: str
    response_topic: str
    kiosk_id: str
    kiosk_name: str


class FailureBudget:
    """Wrong enrollment codes per minute in this process, all callers together (a
    client address says little behind a proxy or a clinic's NAT). Only wrong codes
    count and only they are refused with 429 over the budget: a valid code is checked
    first and always enrolls. Memory is bounded by the budget itself."""

    def __init__(self, max_failures: int, period: float = 60.0) -> None:
        self._period = period
        self._failures: deque[float] = deque(maxlen=max_failures)
        self._lock = threading.Lock()

    def failed(self) -> None:
        """Count a wrong code; 429 when the budget of the last minute is spent."""
        now = time.monotonic()
        with self._lock:
            full = (
                len(self._failures) == self._failures.maxlen
                and self._failures[0] > now - self._period
            )
            self._failures.append(now)
        if full:
            log.warning("enrollment: more than %d wrong codes a minute", self._failures.maxlen)
            raise TooManyAttempts("too many wrong enrollment codes; try again in a minute")


def _budget(request: Request, runtime: RuntimeDep) -> FailureBudget:
    budget: FailureBudget | None = getattr(request.app.state, "kiosk_enroll_budget", None)
    if budget is None:
        budget = FailureBudget(runtime.settings.kiosk_auth_max_failures)
        request.app.state.kiosk_enroll_budget = budget
    return budget


Budget = Annotated[FailureBudget, Depends(_budget)]


@router.post("", status_code=201)
def register(body: KioskCreate, user: Admin, db: DbSession) -> dict[str, Any]:
    """A new kiosk of a location, with its single-use enrollment code (15 minutes)."""
    kiosk, code = kiosks.register(
        db,
        tenant=user.tenant,
        actor=user.sub,
        kiosk_id=body.id,
        name=body.name,
        location_id=body.location_id,
    )
    return {**kiosks.kiosk_json(kiosk), "enrollmentCode": code}


@router.get("")
def list_kiosks(user: Admin, db: DbSession) -> list[dict[str, Any]]:
    return [kiosks.kiosk_json(k) for k in kiosks.list_kiosks(db, user.tenant)]


@router.delete("/{kiosk_id}", status_code=204)
async def disable(kiosk_id: str, user: Admin, db: DbSession, runtime: RuntimeDep) -> Response:
    """Disable a kiosk: its secret is refused from now on, and the broker closes its
    connection (a revocation of its client id)."""
    await anyio.to_thread.run_sync(
        lambda: kiosks.disable(db, tenant=user.tenant, kiosk_id=kiosk_id, actor=user.sub)
    )
    await runtime.issuer.revoke_client_ids(
        user.tenant, [kiosks.client_id_for(user.tenant, kiosk_id)], by=(user.sub, "user")
    )
    return Response(status_code=204)


@router.post("/enroll", status_code=201, response_model=EnrollOut)
def enroll(body: EnrollRequest, db: DbSession, budget: Budget) -> EnrollOut:
    """No token: the enrollment code is the proof. Once per code."""
    enrolled = kiosks.enroll(db, body.enrollment_code)
    if enrolled is None:
        budget.failed()  # 429 over the budget
        raise Unauthorized("unknown, used or expired enrollment code")
    kiosk, secret = enrolled
    return EnrollOut(tenant=kiosk.tenant, kiosk_id=kiosk.id, device_secret=secret)


@router.post("/credentials", response_model=KioskCredentialsOut)
async def credentials(
    runtime: RuntimeDep,
    db: DbSession,
    request: Request,
    auth: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> KioskCredentialsOut:
    """Broker credentials for the kiosk whose device secret this is: kind ``kiosk``,
    one client id per kiosk, an acl of exactly its request and response topics. No
    failure limit: a device secret has 256 bits, nothing to guess."""
    if auth is None or auth.scheme.lower() != "bearer":
        raise Unauthorized("missing device secret")
    kiosk: Kiosk | None = await anyio.to_thread.run_sync(kiosks.authenticate, db, auth.credentials)
    if kiosk is None:
        raise Unauthorized("unknown device secret, or the kiosk is disabled")
    rate_limits(request).check(
        "credentials", tenant=kiosk.tenant, caller="kiosk", caller_id=kiosk.id
    )
    # Let through: only now is it seen (a refused request changes nothing).
    await anyio.to_thread.run_sync(kiosks.seen, db, kiosk.tenant, kiosk.id)
    tenant, client_id = kiosk.tenant, kiosks.client_id_for(kiosk.tenant, kiosk.id)
    acl = kiosk_acl(tenant, kiosk.id)
    ttl = timedelta(seconds=runtime.settings.kiosk_credentials_ttl_seconds)
    not_after = utcnow() + ttl
    renew = functools.partial(
        runtime.issuer.renew,
        tenant=tenant,
        user_id=kiosk.id,
        client_id=client_id,
        not_after=not_after,
        kind="kiosk",
        acl=acl,
    )
    try:
        issued = await renew()
    except SessionNotFoundError:
        # No live credential of this client id: forget an ended one, issue anew.
        await anyio.to_thread.run_sync(kiosks.forget_ended_session, db, client_id)
        try:
            issued = await runtime.issuer.issue(
                tenant=tenant,
                user_id=kiosk.id,
                not_after=not_after,
                kind="kiosk",
                acl=acl,
                ttl=ttl,
                client_id=client_id,
            )
        except SessionNotFoundError:
            # The client id's session was revoked and has not run out: a disable won.
            raise Unauthorized("unknown device secret, or the kiosk is disabled") from None
        except IntegrityError:
            # A concurrent request of the same kiosk issued first, or the client id's
            # session was revoked (a disable meanwhile): then there is nothing to renew.
            try:
                issued = await renew()
            except SessionNotFoundError:
                raise Unauthorized("unknown device secret, or the kiosk is disabled") from None
    # A disable that committed while this was issued may have revoked the client id
    # before the credential existed: look again, and revoke once more if so. (A
    # disable committing after this read revokes after the issue itself.)
    if await anyio.to_thread.run_sync(kiosks.is_disabled, db, tenant, kiosk.id):
        await runtime.issuer.revoke_client_ids(tenant, [client_id])
        raise Unauthorized("unknown device secret, or the kiosk is disabled")
    return KioskCredentialsOut(
        client_id=issued.client_id,
        username=issued.username,
        password=issued.password,
        expires_at=issued.expires_at,
        websocket_url=runtime.settings.websocket_url,
        mqtt_url=runtime.settings.mqtt_url,
        topic_prefix=tenant_prefix(tenant),
        latest_seq=0,  # a kiosk reads no events
        request_topic=kiosk_requests_topic(tenant, kiosk.id).value,
        response_topic=kiosk_responses_topic(tenant, kiosk.id).value,
        kiosk_id=kiosk.id,
        kiosk_name=kiosk.name,
    )
