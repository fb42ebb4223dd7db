"""Encounters: open, document, complete, sign. A signed encounter is read-only."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from api.domain.common import (
    active_provider,
    apply_changes,
    check_version,
    emit_about,
    get_row,
    touch,
)
from api.errors import Conflict, Forbidden, Invalid
from api.models import Appointment, Encounter, Patient
from hub.catalog import EncounterData
from hub.db import utcnow
from hub.ids import new_id
from hub.outbox import EmittedEvent

NOTES = ("chief_complaint", "assessment", "plan")


def get_encounter(session: Session, tenant: str, enc_id: str, *, lock: bool = False) -> Encounter:
    return get_row(session, Encounter, tenant, enc_id, "encounter", lock=lock)


def encounter_data(e: Encounter, **extra: Any) -> EncounterData:
    return EncounterData.model_validate(
        {
            "id": e.id,
            "patient_id": e.patient_id,
            "provider_id": e.provider_id,
            "appointment_id": e.appointment_id,
            "status": e.status,
            "chief_complaint": e.chief_complaint,
            "assessment": e.assessment,
            "plan": e.plan,
            "completed_at": e.completed_at,
            "signed_at": e.signed_at,
            "signed_by": e.signed_by,
            **extra,
        }
    )


def _emit(
    session: Session, e: Encounter, event_type: str, actor: str, **extra: Any
) -> EmittedEvent:
    return emit_about(session, e, event_type, actor, encounter_data(e, **extra))


def _writable(e: Encounter) -> None:
    if e.status == "signed":
        raise Conflict("a signed encounter is read-only")


def open_encounter(
    session: Session,
    *,
    tenant: str,
    actor: str,
    patient_id: str,
    provider_id: str,
    appointment_id: str | None,
    chief_complaint: str | None,
) -> Encounter:
    get_row(session, Patient, tenant, patient_id, "patient")
    active_provider(session, tenant, provider_id)
    if appointment_id is not None:
        appt = get_row(session, Appointment, tenant, appointment_id, "appointment")
        if appt.patient_id != patient_id:
            raise Invalid(f"appointment {appointment_id} belongs to another patient")
    now = utcnow()
    e = Encounter(
        tenant=tenant,
        id=new_id("e"),
        patient_id=patient_id,
        provider_id=provider_id,
        appointment_id=appointment_id,
        status="open",
        chief_complaint=chief_complaint,
        created_at=now,
        updated_at=now,
        version=1,
    )
    session.add(e)
    session.flush()
    _emit(session, e, "encounter:created", actor)
    session.commit()
    return e


def document(
    session: Session,
    *,
    tenant: str,
    actor: str,
    enc_id: str,
    changes: dict[str, Any],
    expected_version: int | None,
) -> Encounter:
    e = get_encounter(session, tenant, enc_id, lock=True)
    _writable(e)
    check_version(e, expected_version, "encounter")
    changed = apply_changes(e, NOTES, changes)
    if not changed:
        session.rollback()
        return e
    touch(e)
    camel = {"chief_complaint": "chiefComplaint", "assessment": "assessment", "plan": "plan"}
    _emit(session, e, "encounter:updated", actor, changed_fields=[camel[f] for f in changed])
    session.commit()
    return e


def complete(session: Session, *, tenant: str, actor: str, enc_id: str) -> Encounter:
    e = get_encounter(session, tenant, enc_id, lock=True)
    _writable(e)
    if e.status != "open":
        raise Conflict(f"a {e.status} encounter cannot be completed")
    e.status = "completed"
    e.completed_at = utcnow()
    touch(e)
    _emit(session, e, "encounter:completed", actor)
    session.commit()
    return e


def sign(session: Session, *, tenant: str, actor: str, enc_id: str) -> Encounter:
    """Only the encounter's provider signs, and only a completed encounter."""
    e = get_encounter(session, tenant, enc_id, lock=True)
    if actor != e.provider_id:
        raise Forbidden("only the encounter's provider can sign it")
    _writable(e)
    if e.status != "completed":
        raise Conflict("complete the encounter before signing it")
    e.status = "signed"
    e.signed_at = utcnow()
    e.signed_by = actor
    touch(e)
    _emit(session, e, "encounter:signed", actor)
    session.commit()
    return e
