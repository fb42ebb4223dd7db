"""Prior authorizations: requested, then decided by the payer. A denial alerts the
requesting provider and the tenant's billing users."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from api.domain.alert_routing import RoutingConfig, route_in_transaction
from api.domain.common import active_provider, emit_about, get_row, touch
from api.errors import Conflict
from api.models import Patient, PriorAuth
from hub.catalog import PriorAuthData
from hub.db import utcnow
from hub.ids import new_id
from hub.outbox import EmittedEvent

TRANSITIONS: dict[str, frozenset[str]] = {
    "requested": frozenset({"pending", "approved", "denied", "cancelled"}),
    "pending": frozenset({"approved", "denied", "cancelled"}),
    "denied": frozenset({"pending"}),  # an appeal
    "approved": frozenset({"cancelled"}),
    "cancelled": frozenset(),
}
STATUS_EVENTS = {"approved": "prior_auth:approved", "denied": "prior_auth:denied"}


def get_prior_auth(session: Session, tenant: str, pa_id: str, *, lock: bool = False) -> PriorAuth:
    return get_row(session, PriorAuth, tenant, pa_id, "prior authorization", lock=lock)


def prior_auth_data(pa: PriorAuth, **extra: Any) -> PriorAuthData:
    return PriorAuthData.model_validate(
        {
            "id": pa.id,
            "patient_id": pa.patient_id,
            "payer_id": pa.payer_id,
            "item": pa.item,
            "status": pa.status,
            "reason": pa.reason,
            "requested_by": pa.requested_by,
            **extra,
        }
    )


def _emit(
    session: Session, pa: PriorAuth, event_type: str, actor: str, **extra: Any
) -> EmittedEvent:
    return emit_about(session, pa, event_type, actor, prior_auth_data(pa, **extra))


def request(
    session: Session,
    *,
    tenant: str,
    actor: str,
    actor_is_provider: bool,
    patient_id: str,
    payer_id: str,
    item: str,
    requesting_provider_id: str | None,
    reason: str | None,
) -> PriorAuth:
    """The catalog has no ``prior_auth:created``: a new request is a status change
    from nothing to ``requested``."""
    get_row(session, Patient, tenant, patient_id, "patient")
    if requesting_provider_id is None and actor_is_provider:
        requesting_provider_id = actor
    if requesting_provider_id is not None:
        active_provider(session, tenant, requesting_provider_id)
    now = utcnow()
    pa = PriorAuth(
        tenant=tenant,
        id=new_id("pa"),
        patient_id=patient_id,
        payer_id=payer_id,
        item=item,
        status="requested",
        reason=reason,
        requested_by=requesting_provider_id,
        created_at=now,
        updated_at=now,
        version=1,
    )
    session.add(pa)
    session.flush()
    _emit(session, pa, "prior_auth:status_changed", actor)
    session.commit()
    return pa


def change_status(
    session: Session,
    *,
    tenant: str,
    actor: str,
    pa_id: str,
    status: str,
    reason: str | None,
    routing: RoutingConfig | None = None,
) -> PriorAuth:
    pa = get_prior_auth(session, tenant, pa_id, lock=True)
    if status not in TRANSITIONS[pa.status]:
        raise Conflict(f"cannot change a {pa.status} prior authorization to {status}")
    previous = pa.status
    pa.status = status
    pa.reason = reason
    touch(pa)
    event = _emit(
        session,
        pa,
        STATUS_EVENTS.get(status, "prior_auth:status_changed"),
        actor,
        previous_status=previous,
    )
    if status == "denied":
        if routing is None:
            raise ValueError("a denial needs the alert routing configuration")
        route_in_transaction(session, event, routing, actor=actor)
    session.commit()
    return pa
