"""Claims and payments, and the patient balance they move.

The balance is what the patient owes: the sum of their claims' patient
responsibility (set when a payer pays or adjusts a claim) less their payments. Each
change to it commits with the change that caused it and emits
``patient:balance_changed`` with the new balance."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from api.domain import patients
from api.domain.alert_routing import RoutingConfig, route_in_transaction
from api.domain.common import (
    apply_changes,
    check_version,
    emit_about,
    get_row,
    touch,
)
from api.errors import Conflict, Invalid
from api.models import Claim, Encounter, Patient, Payment
from hub.catalog import ClaimData, PaymentData
from hub.db import utcnow
from hub.ids import new_id
from hub.outbox import EmittedEvent, emit

# Payer-side changes through POST /claims/{id}/status. Submitting (draft or denied
# -> submitted) has its own route.
TRANSITIONS: dict[str, frozenset[str]] = {
    "draft": frozenset({"void"}),
    "submitted": frozenset({"accepted", "pending", "denied", "paid", "void"}),
    "accepted": frozenset({"pending", "denied", "paid"}),
    "pending": frozenset({"accepted", "denied", "paid"}),
    "denied": frozenset({"void"}),
    "paid": frozenset({"adjusted"}),
    "adjusted": frozenset({"adjusted"}),
    "void": frozenset(),
}
EDITABLE = frozenset({"draft", "denied"})
SUBMITTABLE = frozenset({"draft", "denied"})
STATUS_EVENTS = {"denied": "claim:denied", "paid": "claim:paid"}


def get_claim(session: Session, tenant: str, claim_id: str, *, lock: bool = False) -> Claim:
    return get_row(session, Claim, tenant, claim_id, "claim", lock=lock)


def claim_data(c: Claim, **extra: Any) -> ClaimData:
    return ClaimData.model_validate(
        {
            "id": c.id,
            "patient_id": c.patient_id,
            "payer_id": c.payer_id,
            "encounter_id": c.encounter_id,
            "amount_cents": c.amount_cents,
            "status": c.status,
            "reason": c.reason,
            "paid_amount_cents": c.paid_amount_cents,
            "patient_responsibility_cents": c.patient_responsibility_cents,
            "submitted_at": c.submitted_at,
            **extra,
        }
    )


def _emit(session: Session, c: Claim, event_type: str, actor: str, **extra: Any) -> EmittedEvent:
    return emit_about(session, c, event_type, actor, claim_data(c, **extra))


def _check_encounter(session: Session, tenant: str, encounter_id: str, patient_id: str) -> None:
    enc = get_row(session, Encounter, tenant, encounter_id, "encounter")
    if enc.patient_id != patient_id:
        raise Invalid(f"encounter {encounter_id} belongs to another patient")


def create_claim(
    session: Session,
    *,
    tenant: str,
    actor: str,
    patient_id: str,
    payer_id: str,
    amount_cents: int,
    encounter_id: str | None,
) -> Claim:
    get_row(session, Patient, tenant, patient_id, "patient")
    if encounter_id is not None:
        _check_encounter(session, tenant, encounter_id, patient_id)
    now = utcnow()
    c = Claim(
        tenant=tenant,
        id=new_id("c"),
        patient_id=patient_id,
        payer_id=payer_id,
        encounter_id=encounter_id,
        amount_cents=amount_cents,
        status="draft",
        patient_responsibility_cents=0,
        created_at=now,
        updated_at=now,
        version=1,
    )
    session.add(c)
    session.flush()
    _emit(session, c, "claim:created", actor)
    session.commit()
    return c


def update_claim(
    session: Session,
    *,
    tenant: str,
    actor: str,
    claim_id: str,
    changes: dict[str, Any],
    expected_version: int | None,
) -> Claim:
    c = get_claim(session, tenant, claim_id, lock=True)
    check_version(c, expected_version, "claim")
    if c.status not in EDITABLE:
        raise Conflict(f"a {c.status} claim cannot be edited")
    if changes.get("encounter_id") is not None:
        _check_encounter(session, tenant, changes["encounter_id"], c.patient_id)
    if not apply_changes(c, ("payer_id", "amount_cents", "encounter_id"), changes):
        session.rollback()
        return c
    touch(c)
    _emit(session, c, "claim:updated", actor)
    session.commit()
    return c


def submit_claim(session: Session, *, tenant: str, actor: str, claim_id: str) -> Claim:
    c = get_claim(session, tenant, claim_id, lock=True)
    if c.status not in SUBMITTABLE:
        raise Conflict(f"a {c.status} claim cannot be submitted")
    previous = c.status
    c.status = "submitted"
    c.submitted_at = utcnow()
    c.reason = None
    touch(c)
    _emit(session, c, "claim:submitted", actor, previous_status=previous)
    session.commit()
    return c


def change_claim_status(
    session: Session,
    *,
    tenant: str,
    actor: str,
    claim_id: str,
    status: str,
    reason: str | None,
    paid_amount_cents: int | None,
    patient_responsibility_cents: int | None,
    routing: RoutingConfig | None = None,
) -> Claim:
    """A payer's decision. A denial alerts whom the tenant's rule names (by default
    the billing role), in the same transaction."""
    c = get_claim(session, tenant, claim_id, lock=True)
    if status not in TRANSITIONS[c.status]:
        raise Conflict(f"cannot change a {c.status} claim to {status}")
    previous, owed_before = c.status, c.patient_responsibility_cents
    if status == "denied":
        if not reason:
            raise Invalid("a denial needs a reason", details=[_field("reason", "required")])
        c.reason = reason
    elif status == "paid":
        if paid_amount_cents is None:
            raise Invalid(
                "a payment needs paidAmountCents", details=[_field("paidAmountCents", "required")]
            )
        if paid_amount_cents > c.amount_cents:
            msg = "paidAmountCents exceeds the claim's amount"
            raise Invalid(msg, details=[_field("paidAmountCents", msg)])
        c.paid_amount_cents = paid_amount_cents
        c.patient_responsibility_cents = c.amount_cents - paid_amount_cents
        c.reason = reason
    elif status == "adjusted":
        if patient_responsibility_cents is None:
            msg = "an adjustment needs patientResponsibilityCents"
            raise Invalid(msg, details=[_field("patientResponsibilityCents", "required")])
        c.patient_responsibility_cents = patient_responsibility_cents
        c.reason = reason
    else:
        c.reason = reason
    c.status = status
    touch(c)
    event = _emit(
        session,
        c,
        STATUS_EVENTS.get(status, "claim:status_changed"),
        actor,
        previous_status=previous,
    )
    owed_change = c.patient_responsibility_cents - owed_before
    if owed_change:
        patients.change_balance(
            session,
            tenant=tenant,
            actor=actor,
            patient_id=c.patient_id,
            delta=owed_change,
            reason=f"claim {c.id} {status}",
        )
    if status == "denied":
        if routing is None:
            raise ValueError("a denial needs the alert routing configuration")
        route_in_transaction(session, event, routing, actor=actor)
    session.commit()
    return c


def _field(name: str, message: str) -> dict[str, str]:
    return {"field": name, "message": message}


def post_payment(
    session: Session,
    *,
    tenant: str,
    actor: str,
    patient_id: str,
    amount_cents: int,
    method: str,
    claim_id: str | None,
    reference: str | None,
) -> tuple[Payment, Patient]:
    """Record a payment, lower the balance and emit ``payment:received`` and
    ``patient:balance_changed``, all in one transaction."""
    patient = patients.get_patient(session, tenant, patient_id, lock=True)
    if claim_id is not None:
        claim = get_claim(session, tenant, claim_id)
        if claim.patient_id != patient_id:
            raise Invalid(f"claim {claim_id} belongs to another patient")
    payment = Payment(
        tenant=tenant,
        id=new_id("pay"),
        patient_id=patient_id,
        amount_cents=amount_cents,
        method=method,
        claim_id=claim_id,
        reference=reference,
        received_by=actor,
        created_at=utcnow(),
    )
    session.add(payment)
    session.flush()
    emit(
        session,
        tenant=tenant,
        event_type="payment:received",
        actor=actor,
        patient_id=patient_id,
        entity_id=payment.id,
        data=PaymentData(
            id=payment.id,
            patient_id=patient_id,
            amount_cents=amount_cents,
            method=method,
            claim_id=claim_id,
            balance_cents=patient.balance_cents - amount_cents,
        ),
    )
    patients.change_balance(
        session,
        tenant=tenant,
        actor=actor,
        patient_id=patient_id,
        delta=-amount_cents,
        reason=f"payment {payment.id}",
    )
    session.commit()
    return payment, patient
