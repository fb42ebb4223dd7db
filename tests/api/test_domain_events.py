"""One test per event type of the catalog: the route that emits it, the topic it is
published on, its envelope and its data, as a subscriber with broker credentials from
the api receives them (and as replay returns them)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hub.catalog import CATALOG, get_event_type
from tests.support.clinic import Clinic
from tests.support.stack import Stack

ENVELOPE = {"id", "type", "tenant", "seq", "occurredAt", "actor", "patientId", "entityId", "data"}


@dataclass
class Emitted:
    entity_id: str
    actor: str
    data: dict[str, Any]  # what the event's data must contain


def _appointment(c: Clinic, *statuses: str) -> dict[str, Any]:
    appt = c.book()
    for status in statuses:
        c.post(c.front_desk, f"/appointments/{appt['id']}/status", {"status": status})
    return appt


def appointment_created(c: Clinic) -> Emitted:
    appt = c.book()
    return Emitted(appt["id"], "fd-1", {"status": "scheduled", "patientName": "Ada Lovelace"})


def appointment_updated(c: Clinic) -> Emitted:
    appt = c.book()
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=3)
    c.post(
        c.front_desk,
        f"/appointments/{appt['id']}/reschedule",
        {
            "scheduledStart": start.isoformat(),
            "scheduledEnd": (start + timedelta(minutes=20)).isoformat(),
        },
    )
    return Emitted(appt["id"], "fd-1", {"scheduledStart": start.isoformat().replace("+00:00", "Z")})


def appointment_cancelled(c: Clinic) -> Emitted:
    appt = _appointment(c, "cancelled")
    return Emitted(appt["id"], "fd-1", {"status": "cancelled", "previousStatus": "scheduled"})


def appointment_checkedin(c: Clinic) -> Emitted:
    appt = _appointment(c, "checked_in")
    return Emitted(appt["id"], "fd-1", {"status": "checked_in"})


def patient_updated(c: Clinic) -> Emitted:
    c.stack.http(c.front_desk).put(f"/patients/{c.patient_id}", json={"phone": "555-0100"})
    return Emitted(c.patient_id, "fd-1", {"phone": "555-0100", "changedFields": ["phone"]})


def patient_insurance_verified(c: Clinic) -> Emitted:
    body = {"payerId": "aetna", "memberId": "W123456789"}
    c.post(c.front_desk, f"/patients/{c.patient_id}/insurance/verify", body)
    return Emitted(c.patient_id, "fd-1", {**body, "eligible": True, "patientId": c.patient_id})


def patient_balance_changed(c: Clinic) -> Emitted:
    r = c.stack.http(c.front_desk).get(f"/patients/{c.patient_id}")
    before = r.json()["balanceCents"]
    body = {"patientId": c.patient_id, "amountCents": 2500, "method": "card"}
    c.post(c.front_desk, "/payments", body)
    return Emitted(
        c.patient_id, "fd-1", {"balanceCents": before - 2500, "previousBalanceCents": before}
    )


def _encounter(c: Clinic, *steps: str) -> dict[str, Any]:
    enc = c.post(c.provider, "/encounters", {"patientId": c.patient_id, "providerId": "dr-1"})
    for step in steps:
        enc = c.post(c.provider, f"/encounters/{enc['id']}/{step}")
    return enc


def encounter_created(c: Clinic) -> Emitted:
    enc = _encounter(c)
    return Emitted(enc["id"], "dr-1", {"status": "open", "providerId": "dr-1"})


def encounter_updated(c: Clinic) -> Emitted:
    enc = _encounter(c)
    r = c.stack.http(c.provider).patch(
        f"/encounters/{enc['id']}", json={"assessment": "Actinic keratosis"}
    )
    assert r.status_code == 200, r.text
    return Emitted(
        enc["id"], "dr-1", {"assessment": "Actinic keratosis", "changedFields": ["assessment"]}
    )


def encounter_completed(c: Clinic) -> Emitted:
    enc = _encounter(c, "complete")
    return Emitted(enc["id"], "dr-1", {"status": "completed"})


def encounter_signed(c: Clinic) -> Emitted:
    enc = _encounter(c, "complete", "sign")
    return Emitted(enc["id"], "dr-1", {"status": "signed", "signedBy": "dr-1"})


def biopsy_created(c: Clinic) -> Emitted:
    bx = c.biopsy(site="right shin")
    return Emitted(
        bx["id"], "dr-1", {"status": "ordered", "site": "right shin", "orderingProviderId": "dr-1"}
    )


def biopsy_updated(c: Clinic) -> Emitted:
    bx = c.biopsy()
    r = c.stack.http(c.front_desk).patch(f"/biopsies/{bx['id']}", json={"status": "sent"})
    assert r.status_code == 200, r.text
    return Emitted(bx["id"], "fd-1", {"status": "sent", "previousStatus": "ordered"})


def biopsy_result_received(c: Clinic) -> Emitted:
    bx = c.biopsy()
    c.post(c.lab, f"/biopsies/{bx['id']}/result", {"diagnosis": "Basal cell carcinoma, nodular"})
    return Emitted(
        bx["id"],
        "lab-1",
        {"status": "resulted", "critical": True, "diagnosis": "Basal cell carcinoma, nodular"},
    )


def biopsy_reviewed(c: Clinic) -> Emitted:
    bx = c.biopsy()
    c.post(c.lab, f"/biopsies/{bx['id']}/result", {"diagnosis": "Seborrheic keratosis"})
    c.post(c.provider, f"/biopsies/{bx['id']}/review")
    return Emitted(
        bx["id"], "dr-1", {"status": "reviewed", "reviewedBy": "dr-1", "critical": False}
    )


def claim_created(c: Clinic) -> Emitted:
    claim = c.claim(12345)
    return Emitted(
        claim["id"], "bl-1", {"status": "draft", "amountCents": 12345, "payerId": "aetna"}
    )


def claim_updated(c: Clinic) -> Emitted:
    claim = c.claim()
    r = c.stack.http(c.billing).patch(f"/claims/{claim['id']}", json={"amountCents": 15000})
    assert r.status_code == 200, r.text
    return Emitted(claim["id"], "bl-1", {"amountCents": 15000, "status": "draft"})


def claim_submitted(c: Clinic) -> Emitted:
    claim = c.claim(submitted=True)
    return Emitted(claim["id"], "bl-1", {"status": "submitted", "previousStatus": "draft"})


def claim_status_changed(c: Clinic) -> Emitted:
    claim = c.claim(submitted=True)
    c.post(c.billing, f"/claims/{claim['id']}/status", {"status": "accepted"})
    return Emitted(claim["id"], "bl-1", {"status": "accepted", "previousStatus": "submitted"})


def claim_denied(c: Clinic) -> Emitted:
    claim = c.claim(submitted=True)
    c.post(c.billing, f"/claims/{claim['id']}/status", {"status": "denied", "reason": "CO-197"})
    return Emitted(claim["id"], "bl-1", {"status": "denied", "reason": "CO-197"})


def claim_paid(c: Clinic) -> Emitted:
    claim = c.claim(20000, submitted=True)
    body = {"status": "paid", "paidAmountCents": 16000}
    c.post(c.billing, f"/claims/{claim['id']}/status", body)
    return Emitted(
        claim["id"],
        "bl-1",
        {"status": "paid", "paidAmountCents": 16000, "patientResponsibilityCents": 4000},
    )


def payment_received(c: Clinic) -> Emitted:
    pay = c.post(
        c.billing, "/payments", {"patientId": c.patient_id, "amountCents": 4200, "method": "check"}
    )
    return Emitted(
        pay["id"],
        "bl-1",
        {"amountCents": 4200, "method": "check", "balanceCents": pay["balanceCents"]},
    )


def _prior_auth(c: Clinic) -> dict[str, Any]:
    body = {"patientId": c.patient_id, "payerId": "aetna", "item": "Mohs surgery"}
    return c.post(c.provider, "/prior-auths", body)


def prior_auth_status_changed(c: Clinic) -> Emitted:
    pa = _prior_auth(c)
    return Emitted(
        pa["id"], "dr-1", {"status": "requested", "item": "Mohs surgery", "requestedBy": "dr-1"}
    )


def prior_auth_approved(c: Clinic) -> Emitted:
    pa = _prior_auth(c)
    c.post(c.billing, f"/prior-auths/{pa['id']}/status", {"status": "approved"})
    return Emitted(pa["id"], "bl-1", {"status": "approved", "previousStatus": "requested"})


def prior_auth_denied(c: Clinic) -> Emitted:
    pa = _prior_auth(c)
    c.post(
        c.billing,
        f"/prior-auths/{pa['id']}/status",
        {"status": "denied", "reason": "not medically necessary"},
    )
    return Emitted(pa["id"], "bl-1", {"status": "denied", "reason": "not medically necessary"})


CASES: dict[str, Callable[[Clinic], Emitted]] = {
    "appointment:created": appointment_created,
    "appointment:updated": appointment_updated,
    "appointment:cancelled": appointment_cancelled,
    "appointment:checkedin": appointment_checkedin,
    "patient:updated": patient_updated,
    "patient:insurance_verified": patient_insurance_verified,
    "patient:balance_changed": patient_balance_changed,
    "encounter:created": encounter_created,
    "encounter:updated": encounter_updated,
    "encounter:completed": encounter_completed,
    "encounter:signed": encounter_signed,
    "biopsy:created": biopsy_created,
    "biopsy:updated": biopsy_updated,
    "biopsy:result_received": biopsy_result_received,
    "biopsy:reviewed": biopsy_reviewed,
    "claim:created": claim_created,
    "claim:updated": claim_updated,
    "claim:submitted": claim_submitted,
    "claim:status_changed": claim_status_changed,
    "claim:denied": claim_denied,
    "claim:paid": claim_paid,
    "payment:received": payment_received,
    "prior_auth:status_changed": prior_auth_status_changed,
    "prior_auth:approved": prior_auth_approved,
    "prior_auth:denied": prior_auth_denied,
}
# Emitted by the escalation worker, not a route: tests/api/test_notifications.py.
ELSEWHERE = {"biopsy:escalated"}


def test_every_catalog_type_has_a_case() -> None:
    assert set(CASES) | ELSEWHERE == set(CATALOG)


@pytest.mark.parametrize("event_type", CASES)
def test_route_emits_event(stack: Stack, clinic: Clinic, event_type: str) -> None:
    probe = stack.connected_probe(clinic.admin)
    try:
        assert not probe.subscribe(
            f"tenants/{clinic.tenant}/patients/{clinic.patient_id}/#"
        ).is_failure
        expected = CASES[event_type](clinic)
        msg = probe.wait_event(event_type, expected.entity_id)
    finally:
        probe.close()
    etype = get_event_type(event_type)
    assert msg.topic == (
        f"tenants/{clinic.tenant}/patients/{clinic.patient_id}/"
        f"{etype.entity}/{expected.entity_id}/{etype.action}"
    )
    assert msg.content_type == "application/json"
    assert not msg.retain
    body = msg.json()
    assert set(body) == ENVELOPE
    assert body["type"] == event_type
    assert body["tenant"] == clinic.tenant
    assert body["actor"] == expected.actor
    assert body["patientId"] == clinic.patient_id
    assert body["entityId"] == expected.entity_id
    assert isinstance(body["seq"], int)
    assert body["seq"] > 0
    # The data is valid against the catalog schema and says what the change was.
    etype.validate(body["data"])
    assert {k: body["data"].get(k) for k in expected.data} == expected.data
    # Replay returns the very same event.
    r = stack.http(clinic.front_desk).get("/events", params={"after": body["seq"] - 1, "limit": 1})
    assert r.status_code == 200, r.text
    assert r.json()["events"] == [body]
