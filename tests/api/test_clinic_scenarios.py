"""The clinic's workflows as their users see them: each subscriber (a patient's
chart, the billing board) sees the change live, and the numbers add up."""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tests.support.clinic import Clinic
from tests.support.mqtt import Probe
from tests.support.stack import Stack


def chart(stack: Stack, clinic: Clinic, token: str) -> Probe:
    """One patient's chart, as an exam room subscribes to it."""
    probe = stack.connected_probe(token)
    assert not probe.subscribe(f"tenants/{clinic.tenant}/patients/{clinic.patient_id}/#").is_failure
    return probe


def billing_board(stack: Stack, clinic: Clinic) -> Probe:
    probe = stack.connected_probe(clinic.billing)
    for entity in ("claim", "payment", "prior_auth"):
        topic = f"tenants/{clinic.tenant}/patients/+/{entity}/#"
        assert not probe.subscribe(topic).is_failure
    return probe


def balance(stack: Stack, clinic: Clinic) -> int:
    r = stack.http(clinic.front_desk).get(f"/patients/{clinic.patient_id}")
    assert r.status_code == 200, r.text
    return int(r.json()["balanceCents"])


def test_demographics_update_reaches_the_patients_chart(stack: Stack, clinic: Clinic) -> None:
    probe = chart(stack, clinic, clinic.provider)
    try:
        http = stack.http(clinic.front_desk)
        version = http.get(f"/patients/{clinic.patient_id}").json()["version"]
        body = {"lastName": "King", "email": "ada@example.org", "version": version}
        r = http.put(f"/patients/{clinic.patient_id}", json=body)
        assert r.status_code == 200, r.text
        assert r.json()["lastName"] == "King"
        assert r.json()["version"] == version + 1
        event = probe.wait_event("patient:updated", clinic.patient_id).json()
        assert event["data"]["lastName"] == "King"
        assert event["data"]["email"] == "ada@example.org"
        assert sorted(event["data"]["changedFields"]) == ["email", "lastName"]
        # A stale edit (from a screen loaded before that change) is refused.
        r = http.put(f"/patients/{clinic.patient_id}", json={"phone": "1", "version": version})
        assert r.status_code == 409, r.text
        # Saving the same values again changes nothing and emits nothing.
        seq = clinic.latest_seq()
        r = http.put(f"/patients/{clinic.patient_id}", json={"lastName": "King"})
        assert r.status_code == 200, r.text
        assert r.json()["version"] == version + 1
        assert clinic.latest_seq() == seq
    finally:
        probe.close()


def test_payment_updates_the_balance_everywhere(stack: Stack, clinic: Clinic) -> None:
    probe = chart(stack, clinic, clinic.front_desk)
    board = billing_board(stack, clinic)
    try:
        claim = clinic.claim(30000, submitted=True)
        paid = {"status": "paid", "paidAmountCents": 24000}
        clinic.post(clinic.billing, f"/claims/{claim['id']}/status", paid)
        owed = probe.wait_event("patient:balance_changed", clinic.patient_id).json()["data"]
        assert (owed["previousBalanceCents"], owed["balanceCents"]) == (0, 6000)
        assert balance(stack, clinic) == 6000

        body = {"patientId": clinic.patient_id, "amountCents": 2500, "method": "card"}
        receipt = clinic.post(clinic.front_desk, "/payments", body)
        assert receipt["balanceCents"] == 3500
        payment_event = board.wait_event("payment:received", receipt["id"]).json()
        payment = payment_event["data"]
        assert payment["amountCents"] == 2500
        assert payment["balanceCents"] == 3500
        changed = probe.wait_for(
            lambda m: (
                m.json().get("type") == "patient:balance_changed"
                and m.json()["data"]["balanceCents"] == 3500
            )
        ).json()
        assert changed["data"]["previousBalanceCents"] == 6000
        # One transaction: the payment and the balance change are consecutive events.
        assert changed["seq"] == payment_event["seq"] + 1
        assert balance(stack, clinic) == 3500
    finally:
        probe.close()
        board.close()


def test_balance_follows_payments_and_claims_under_concurrency(
    stack: Stack, clinic: Clinic
) -> None:
    """Payments posted at once from several desks all count (the patient row is locked),
    and the balance events tell a consistent story: each one's previous balance is the
    one before it."""
    claim = clinic.claim(50000, submitted=True)
    clinic.post(
        clinic.billing,
        f"/claims/{claim['id']}/status",
        {"status": "paid", "paidAmountCents": 30000},
    )
    clinic.post(
        clinic.billing,
        f"/claims/{claim['id']}/status",
        {"status": "adjusted", "patientResponsibilityCents": 15000, "reason": "contract rate"},
    )
    assert balance(stack, clinic) == 15000

    def pay(i: int) -> dict[str, Any]:
        body = {"patientId": clinic.patient_id, "amountCents": 100 + i, "method": "cash"}
        return clinic.post(clinic.front_desk, "/payments", body)

    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(pay, range(12)))
    expected = 15000 - sum(100 + i for i in range(12))
    assert balance(stack, clinic) == expected
    r = stack.http(clinic.billing).get(
        "/events", params={"types": "patient:balance_changed", "patientId": clinic.patient_id}
    )
    changes = [e["data"] for e in r.json()["events"]]
    assert changes[0]["previousBalanceCents"] == 0
    for before, after in itertools.pairwise(changes):
        assert after["previousBalanceCents"] == before["balanceCents"]
    assert changes[-1]["balanceCents"] == expected


def test_submitting_a_claim_changes_its_status_on_the_billing_board(
    stack: Stack, clinic: Clinic
) -> None:
    board = billing_board(stack, clinic)
    try:
        claim = clinic.claim(18000)
        created = board.wait_event("claim:created", claim["id"]).json()
        assert created["data"]["status"] == "draft"
        clinic.post(clinic.billing, f"/claims/{claim['id']}/submit")
        submitted = board.wait_event("claim:submitted", claim["id"]).json()
        assert submitted["data"]["status"] == "submitted"
        assert submitted["data"]["submittedAt"] is not None
        clinic.post(clinic.billing, f"/claims/{claim['id']}/status", {"status": "pending"})
        pending = board.wait_event("claim:status_changed", claim["id"]).json()
        assert (pending["data"]["previousStatus"], pending["data"]["status"]) == (
            "submitted",
            "pending",
        )
        clinic.post(
            clinic.billing, f"/claims/{claim['id']}/status", {"status": "denied", "reason": "CO-16"}
        )
        denied = board.wait_event("claim:denied", claim["id"]).json()
        assert denied["data"]["reason"] == "CO-16"
        # A denied claim is corrected and resubmitted.
        r = stack.http(clinic.billing).patch(f"/claims/{claim['id']}", json={"amountCents": 17500})
        assert r.status_code == 200, r.text
        clinic.post(clinic.billing, f"/claims/{claim['id']}/submit")
        again = board.wait_event("claim:submitted", claim["id"]).json()
        assert again["data"]["previousStatus"] == "denied"
        assert again["data"]["amountCents"] == 17500
        assert again["seq"] > denied["seq"] > pending["seq"] > submitted["seq"]
    finally:
        board.close()


def test_encounter_is_signed_only_by_its_provider_and_then_read_only(
    stack: Stack, clinic: Clinic
) -> None:
    probe = chart(stack, clinic, clinic.provider)
    try:
        appt = clinic.book()
        enc = clinic.post(
            clinic.provider,
            "/encounters",
            {"patientId": clinic.patient_id, "providerId": "dr-1", "appointmentId": appt["id"]},
        )
        assert (
            probe.wait_event("encounter:created", enc["id"]).json()["data"]["appointmentId"]
            == appt["id"]
        )
        dr2 = stack.http(clinic.token("dr-2", "provider"))
        clinic.post(clinic.provider, f"/encounters/{enc['id']}/complete")
        r = dr2.post(f"/encounters/{enc['id']}/sign")
        assert r.status_code == 403, r.text
        r = stack.http(clinic.admin).post(f"/encounters/{enc['id']}/sign")
        assert r.status_code == 403, r.text
        signed = clinic.post(clinic.provider, f"/encounters/{enc['id']}/sign")
        assert signed["signedBy"] == "dr-1"
        assert probe.wait_event("encounter:signed", enc["id"]).json()["data"]["status"] == "signed"
        seq = clinic.latest_seq()
        http = stack.http(clinic.provider)
        for r in (
            http.patch(f"/encounters/{enc['id']}", json={"plan": "late edit"}),
            http.post(f"/encounters/{enc['id']}/complete"),
            http.post(f"/encounters/{enc['id']}/sign"),
        ):
            assert r.status_code == 409, r.text
            assert r.json()["error"] == "conflict"
        assert clinic.latest_seq() == seq
        assert http.get(f"/encounters/{enc['id']}").json() == signed
    finally:
        probe.close()


def test_reconnecting_chart_misses_nothing_across_domains(stack: Stack, clinic: Clinic) -> None:
    """A chart closes; the patient is checked in, seen, biopsied, billed and pays; the
    chart comes back on its persistent session and has every event, in seq order."""
    creds = stack.credentials(clinic.provider)
    probe = stack.reconnect(creds)
    assert not probe.subscribe(f"tenants/{clinic.tenant}/patients/{clinic.patient_id}/#").is_failure
    probe.close()
    start = clinic.latest_seq()

    appt = clinic.book()
    clinic.post(clinic.front_desk, f"/appointments/{appt['id']}/status", {"status": "checked_in"})
    enc = clinic.post(
        clinic.provider, "/encounters", {"patientId": clinic.patient_id, "providerId": "dr-1"}
    )
    bx = clinic.biopsy()
    clinic.post(clinic.lab, f"/biopsies/{bx['id']}/result", {"diagnosis": "Basal cell carcinoma"})
    claim = clinic.claim(9000, submitted=True)
    clinic.post(
        clinic.front_desk,
        "/payments",
        {"patientId": clinic.patient_id, "amountCents": 4000, "method": "card"},
    )
    latest = clinic.latest_seq()

    back = stack.reconnect(creds)
    try:
        assert back.session_present
        got: list[dict[str, Any]] = []
        while not got or got[-1]["seq"] < latest:
            # Events only: today's appointment also updates its snapshot topic.
            m = back.wait_for(lambda m: len(m.topic.split("/")) == 7)
            got.append(m.json())
        assert [e["seq"] for e in got] == list(range(start + 1, latest + 1))
        assert {e["entityId"] for e in got} >= {appt["id"], enc["id"], bx["id"], claim["id"]}
        assert [e["type"] for e in got][-2:] == ["payment:received", "patient:balance_changed"]
    finally:
        back.close()
