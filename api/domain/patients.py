"""Patients: demographics, insurance verification, and the balance."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from api.domain.common import apply_changes, check_version, get_row, touch
from api.models import Patient
from hub.catalog import BalanceChangedData, InsuranceVerifiedData, PatientData
from hub.db import utcnow
from hub.outbox import emit

DEMOGRAPHICS = ("first_name", "last_name", "date_of_birth", "sex", "phone", "email")


def get_patient(session: Session, tenant: str, patient_id: str, *, lock: bool = False) -> Patient:
    return get_row(session, Patient, tenant, patient_id, "patient", lock=lock)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


def patient_data(patient: Patient, changed: list[str] | None = None) -> PatientData:
    return PatientData.model_validate(
        {
            **{f: getattr(patient, f) for f in DEMOGRAPHICS},
            "id": patient.id,
            "changed_fields": [_camel(f) for f in changed or []],
        }
    )


def update(
    session: Session,
    *,
    tenant: str,
    actor: str,
    patient_id: str,
    changes: dict[str, Any],
    expected_version: int | None,
) -> Patient:
    """Apply the given demographic fields; emit ``patient:updated`` naming the fields
    that really changed (a no-op edit commits and emits nothing)."""
    patient = get_patient(session, tenant, patient_id, lock=True)
    check_version(patient, expected_version, "patient")
    changed = apply_changes(patient, DEMOGRAPHICS, changes)
    if not changed:
        session.rollback()
        return patient
    touch(patient)
    emit(
        session,
        tenant=tenant,
        event_type="patient:updated",
        actor=actor,
        patient_id=patient.id,
        entity_id=patient.id,
        data=patient_data(patient, changed),
    )
    session.commit()
    return patient


def verify_insurance(
    session: Session,
    *,
    tenant: str,
    actor: str,
    patient_id: str,
    payer_id: str,
    member_id: str,
    eligible: bool,
) -> Patient:
    patient = get_patient(session, tenant, patient_id, lock=True)
    now = utcnow()
    patient.insurance_payer_id = payer_id
    patient.insurance_member_id = member_id
    patient.insurance_eligible = eligible
    patient.insurance_verified_at = now
    touch(patient)
    emit(
        session,
        tenant=tenant,
        event_type="patient:insurance_verified",
        actor=actor,
        patient_id=patient.id,
        entity_id=patient.id,
        data=InsuranceVerifiedData(
            patient_id=patient.id,
            payer_id=payer_id,
            member_id=member_id,
            eligible=eligible,
            verified_at=now,
        ),
    )
    session.commit()
    return patient


def change_balance(
    session: Session, *, tenant: str, actor: str, patient_id: str, delta: int, reason: str
) -> Patient:
    """Add ``delta`` cents to what the patient owes, inside the caller's transaction,
    and emit ``patient:balance_changed``. The patient row is locked, so concurrent
    payments and claim updates add up instead of overwriting each other."""
    patient = get_patient(session, tenant, patient_id, lock=True)
    if delta == 0:
        return patient
    previous = patient.balance_cents
    patient.balance_cents = previous + delta
    touch(patient)
    emit(
        session,
        tenant=tenant,
        event_type="patient:balance_changed",
        actor=actor,
        patient_id=patient.id,
        entity_id=patient.id,
        data=BalanceChangedData(
            patient_id=patient.id,
            balance_cents=patient.balance_cents,
            previous_balance_cents=previous,
            reason=reason,
        ),
    )
    return patient
