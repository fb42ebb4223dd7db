"""Helpers every domain uses: tenant-scoped lookups and bookkeeping."""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.errors import Conflict, Invalid, NotFound
from api.models import Staff
from hub.db import utcnow
from hub.models import CamelModel
from hub.outbox import EmittedEvent, emit

T = TypeVar("T")


class Versioned(Protocol):
    updated_at: Any
    version: int


class Record(Protocol):
    tenant: str
    id: str
    patient_id: str


def emit_about(
    session: Session, row: Record, event_type: str, actor: str, data: CamelModel
) -> EmittedEvent:
    """Emit an event about one record of a patient (its entity id is the record's)."""
    return emit(
        session,
        tenant=row.tenant,
        event_type=event_type,
        actor=actor,
        patient_id=row.patient_id,
        entity_id=row.id,
        data=data,
    )


def get_row(
    session: Session, model: type[T], tenant: str, id_: str, what: str, *, lock: bool = False
) -> T:
    """One row of this tenant by id, or 404: another tenant's id is simply unknown.
    ``lock`` takes the row lock (PostgreSQL) so concurrent changes serialize, and reads
    the row afresh: ``Session.get`` would otherwise hand back an object already in the
    identity map, as it was before the lock was granted."""
    row = session.get(model, (tenant, id_), with_for_update=lock or None, populate_existing=lock)
    if row is None:
        raise NotFound(f"{what} {id_} not found")
    return row


def touch(row: Versioned) -> None:
    row.updated_at = utcnow()
    row.version += 1


def check_version(row: Versioned, expected: int | None, what: str) -> None:
    """Optimistic concurrency for edits made from a screen the user looked at."""
    if expected is not None and expected != row.version:
        raise Conflict(
            f"the {what} changed since version {expected} (now {row.version}); reload it"
        )


def active_provider(session: Session, tenant: str, staff_id: str) -> Staff:
    staff = get_row(session, Staff, tenant, staff_id, "provider")
    if not staff.is_provider or not staff.active:
        raise Invalid(f"staff member {staff_id} is not an active provider")
    return staff


def staff_with_role(session: Session, tenant: str, role: str) -> list[Staff]:
    """Active staff who hold ``role`` (roles are a short JSON list: filtered here)."""
    rows = session.scalars(
        select(Staff).where(Staff.tenant == tenant, Staff.active.is_(True)).order_by(Staff.id)
    ).all()
    return [s for s in rows if role in (s.roles or [])]


def apply_changes(row: Any, fields: tuple[str, ...], changes: dict[str, Any]) -> list[str]:
    """Set the given ``fields`` present in ``changes``; return those whose value really
    changed (a no-op edit must neither bump the version nor emit an event)."""
    changed = [f for f in fields if f in changes and getattr(row, f) != changes[f]]
    for field in changed:
        setattr(row, field, changes[field])
    return changed
