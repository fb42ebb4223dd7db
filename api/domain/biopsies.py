"""Biopsies: order, specimen status, pathology result, provider review.

A result is critical when its diagnosis matches the configured list or the lab says
``concerning``; a critical result alerts the ordering provider until reviewed."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from api.domain import notifications
from api.domain.alert_routing import RoutingConfig, route_in_transaction
from api.domain.alert_routing import is_critical as is_critical
from api.domain.common import active_provider, check_version, emit_about, get_row, touch
from api.errors import Conflict, Forbidden, Invalid
from api.models import Biopsy, Encounter, Patient
from hub.catalog import BiopsyData
from hub.db import utcnow
from hub.ids import new_id
from hub.outbox import EmittedEvent

# Status changes through PATCH. A result and its review have their own routes.
TRANSITIONS: dict[str, frozenset[str]] = {
    "ordered": frozenset({"collected", "sent", "cancelled"}),
    "collected": frozenset({"sent", "cancelled"}),
    "sent": frozenset({"cancelled"}),
    "resulted": frozenset(),
    "reviewed": frozenset(),
    "cancelled": frozenset(),
}
# A lab may result a specimen whose collection or shipping nobody recorded.
RESULTABLE = frozenset({"ordered", "collected", "sent"})


def get_biopsy(session: Session, tenant: str, biopsy_id: str, *, lock: bool = False) -> Biopsy:
    return get_row(session, Biopsy, tenant, biopsy_id, "biopsy", lock=lock)


def biopsy_data(b: Biopsy, **extra: Any) -> BiopsyData:
    return BiopsyData.model_validate(
        {
            "id": b.id,
            "patient_id": b.patient_id,
            "ordering_provider_id": b.ordering_provider_id,
            "encounter_id": b.encounter_id,
            "site": b.site,
            "status": b.status,
            "diagnosis": b.diagnosis,
            "concerning": b.concerning,
            "critical": b.critical,
            "resulted_at": b.resulted_at,
            "reviewed_at": b.reviewed_at,
            "reviewed_by": b.reviewed_by,
            **extra,
        }
    )


def _emit(session: Session, b: Biopsy, event_type: str, actor: str, **extra: Any) -> EmittedEvent:
    return emit_about(session, b, event_type, actor, biopsy_data(b, **extra))


def order(
    session: Session,
    *,
    tenant: str,
    actor: str,
    patient_id: str,
    ordering_provider_id: str,
    site: str,
    encounter_id: str | None,
) -> Biopsy:
    get_row(session, Patient, tenant, patient_id, "patient")
    active_provider(session, tenant, ordering_provider_id)
    if encounter_id is not None:
        enc = get_row(session, Encounter, tenant, encounter_id, "encounter")
        if enc.patient_id != patient_id:
            raise Invalid(f"encounter {encounter_id} belongs to another patient")
    now = utcnow()
    b = Biopsy(
        tenant=tenant,
        id=new_id("b"),
        patient_id=patient_id,
        ordering_provider_id=ordering_provider_id,
        encounter_id=encounter_id,
        site=site,
        status="ordered",
        critical=False,
        created_at=now,
        updated_at=now,
        version=1,
    )
    session.add(b)
    session.flush()
    _emit(session, b, "biopsy:created", actor)
    session.commit()
    return b


def update(
    session: Session,
    *,
    tenant: str,
    actor: str,
    biopsy_id: str,
    site: str | None,
    status: str | None,
    expected_version: int | None,
) -> Biopsy:
    b = get_biopsy(session, tenant, biopsy_id, lock=True)
    check_version(b, expected_version, "biopsy")
    if b.status in ("resulted", "reviewed", "cancelled"):
        raise Conflict(f"a {b.status} biopsy cannot be changed")
    previous = b.status
    changed = False
    if status is not None and status != b.status:
        if status not in TRANSITIONS[b.status]:
            raise Conflict(f"cannot change a {b.status} biopsy to {status}")
        b.status = status
        changed = True
    if site is not None and site != b.site:
        b.site = site
        changed = True
    if not changed:
        session.rollback()
        return b
    touch(b)
    _emit(session, b, "biopsy:updated", actor, previous_status=previous)
    session.commit()
    return b


def record_result(
    session: Session,
    *,
    tenant: str,
    actor: str,
    biopsy_id: str,
    diagnosis: str,
    concerning: bool | None,
    routing: RoutingConfig,
) -> Biopsy:
    """The pathology result. A critical one alerts whom the tenant's rule names (by
    default the ordering provider) in the same transaction: the alert exists if and
    only if the result was recorded."""
    b = get_biopsy(session, tenant, biopsy_id, lock=True)
    if b.status not in RESULTABLE:
        raise Conflict(f"a {b.status} biopsy cannot receive a result")
    previous = b.status
    now = utcnow()
    b.status = "resulted"
    b.diagnosis = diagnosis
    b.concerning = concerning
    b.critical = is_critical(diagnosis, concerning, routing.critical_terms)
    b.resulted_at = now
    touch(b)
    event = _emit(session, b, "biopsy:result_received", actor, previous_status=previous)
    route_in_transaction(session, event, routing, actor=actor)
    session.commit()
    return b


def review(session: Session, *, tenant: str, actor: str, biopsy_id: str) -> Biopsy:
    """Only the ordering provider reviews; reviewing settles the result's alerts."""
    b = get_biopsy(session, tenant, biopsy_id, lock=True)
    if actor != b.ordering_provider_id:
        raise Forbidden("only the ordering provider can review this result")
    if b.status != "resulted":
        raise Conflict(f"a {b.status} biopsy cannot be reviewed")
    # The alerts first: the escalation worker locks alerts, then the tenant's seq (to
    # emit); taking them in the same order here cannot deadlock with it.
    notifications.acknowledge_entity(session, tenant=tenant, entity_id=b.id, by=actor)
    b.status = "reviewed"
    b.reviewed_at = utcnow()
    b.reviewed_by = actor
    touch(b)
    _emit(session, b, "biopsy:reviewed", actor, previous_status="resulted")
    session.commit()
    return b
