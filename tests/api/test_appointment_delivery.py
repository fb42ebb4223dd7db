"""Appointment changes reach a browser-like subscriber (MQTT over WebSocket, with
credentials from the api) with the contract's topic, envelope and data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.support.clinic import APPOINTMENT_FIELDS, Clinic
from tests.support.mqtt import Received
from tests.support.stack import Stack


def _check_envelope(msg: Received, clinic: Clinic, event_type: str, appt: dict, actor: str) -> dict:
    body = msg.json()
    entity, action = event_type.split(":")
    assert msg.topic == (
        f"tenants/{clinic.tenant}/patients/{clinic.patient_id}/{entity}/{appt['id']}/{action}"
    )
    assert msg.content_type == "application/json"
    assert set(body) == {
        "id",
        "type",
        "tenant",
        "seq",
        "occurredAt",
        "actor",
        "patientId",
        "entityId",
        "data",
    }
    assert body["type"] == event_type
    assert body["tenant"] == clinic.tenant
    assert body["actor"] == actor
    assert body["patientId"] == clinic.patient_id
    assert body["entityId"] == appt["id"]
    assert body["occurredAt"].endswith("Z")
    data = body["data"]
    assert set(data) >= APPOINTMENT_FIELDS, APPOINTMENT_FIELDS - set(data)
    assert data["patientName"] == "Ada Lovelace"
    assert data["providerName"] == "Dr. One"
    return body


def test_appointment_lifecycle_reaches_websocket_subscriber(stack: Stack, clinic: Clinic) -> None:
    probe = stack.connected_probe(clinic.front_desk)
    try:
        assert not probe.subscribe(f"tenants/{clinic.tenant}/patients/+/appointment/#").is_failure
        http = stack.http(clinic.front_desk)

        appt = clinic.book()
        created = _check_envelope(
            probe.wait_event("appointment:created", appt["id"]),
            clinic,
            "appointment:created",
            appt,
            "fd-1",
        )
        assert created["data"]["status"] == "scheduled"

        new_start = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2)
        r = http.post(
            f"/appointments/{appt['id']}/reschedule",
            json={
                "scheduledStart": new_start.isoformat(),
                "scheduledEnd": (new_start + timedelta(minutes=45)).isoformat(),
            },
        )
        assert r.status_code == 200, r.text
        updated = _check_envelope(
            probe.wait_event("appointment:updated", appt["id"]),
            clinic,
            "appointment:updated",
            appt,
            "fd-1",
        )
        assert datetime.fromisoformat(updated["data"]["scheduledStart"]) == new_start
        assert datetime.fromisoformat(
            updated["data"]["previousScheduledStart"]
        ) == datetime.fromisoformat(appt["scheduledStart"])

        r = http.post(f"/appointments/{appt['id']}/status", json={"status": "checked_in"})
        assert r.status_code == 200, r.text
        checked = _check_envelope(
            probe.wait_event("appointment:checkedin", appt["id"]),
            clinic,
            "appointment:checkedin",
            appt,
            "fd-1",
        )
        assert checked["data"]["status"] == "checked_in"
        assert checked["data"]["previousStatus"] == "scheduled"

        other = clinic.book()
        probe.wait_event("appointment:created", other["id"])
        r = http.post(
            f"/appointments/{other['id']}/status", json={"status": "cancelled", "reason": "sick"}
        )
        assert r.status_code == 200, r.text
        cancelled = _check_envelope(
            probe.wait_event("appointment:cancelled", other["id"]),
            clinic,
            "appointment:cancelled",
            other,
            "fd-1",
        )
        assert cancelled["data"]["status"] == "cancelled"
        assert cancelled["data"]["cancelReason"] == "sick"

        seqs = [created["seq"], updated["seq"], checked["seq"], cancelled["seq"]]
        assert seqs == sorted(seqs)
        assert len(set(seqs)) == 4
    finally:
        probe.close()


def _published(stack: Stack, clinic: Clinic) -> None:
    """Wait until the relay has published everything committed so far (so snapshots
    are retained): events go out in seq order, so a later barrier event proves it."""
    watcher = stack.connected_probe(clinic.admin)
    try:
        watcher.subscribe(f"tenants/{clinic.tenant}/patients/+/appointment/+/+")
        barrier = clinic.book(start=datetime.now(UTC) + timedelta(days=2))
        watcher.wait_event("appointment:created", barrier["id"])
    finally:
        watcher.close()


def test_todays_appointments_are_retained_snapshots_until_cancelled(
    stack: Stack, clinic: Clinic
) -> None:
    """Within a second of the clinic's midnight the day changes under the test."""
    appt = clinic.book()
    _published(stack, clinic)
    topic = f"tenants/{clinic.tenant}/patients/{clinic.patient_id}/appointment/{appt['id']}"
    # A subscriber arriving later still sees today's board, as retained snapshots.
    first = stack.connected_probe(clinic.front_desk)
    try:
        first.subscribe(f"tenants/{clinic.tenant}/patients/+/appointment/+")
        snap = first.wait_for(lambda m: m.topic == topic and m.retain)
        body = snap.json()
        assert body["type"] == "appointment:created"
        assert body["data"]["id"] == appt["id"]
        assert snap.expiry is not None
        assert 0 < snap.expiry <= 24 * 3600

        r = stack.http(clinic.front_desk).post(
            f"/appointments/{appt['id']}/status", json={"status": "cancelled"}
        )
        assert r.status_code == 200
        cleared = first.wait_for(lambda m: m.topic == topic and m.payload == b"")
        assert cleared.payload == b""
    finally:
        first.close()
    # After the clear, a new subscriber gets no snapshot of the cancelled appointment,
    # but does get the snapshot of a live one (which also proves it is listening).
    live = clinic.book()
    _published(stack, clinic)
    later = stack.connected_probe(clinic.front_desk)
    try:
        later.subscribe(f"tenants/{clinic.tenant}/patients/+/appointment/+")
        later.wait_for(lambda m: m.retain and m.topic.endswith(live["id"]))
        assert all(m.topic != topic for m in later.drain())
    finally:
        later.close()


def test_meta_seq_is_retained_with_the_newest_seq(stack: Stack, clinic: Clinic) -> None:
    clinic.book()
    seq = clinic.latest_seq()
    topic = f"tenants/{clinic.tenant}/meta/seq"
    live = stack.connected_probe(clinic.front_desk)
    try:
        live.subscribe(topic)
        live.wait_for(lambda m: m.topic == topic and m.json()["seq"] == seq)
    finally:
        live.close()
    # Once published, a subscriber arriving later gets it as a retained message.
    late = stack.connected_probe(clinic.front_desk)
    try:
        late.subscribe(topic)
        msg = late.wait_for(lambda m: m.topic == topic)
        assert msg.retain
        assert msg.json()["seq"] == seq
        assert msg.json()["at"].endswith("Z")
    finally:
        late.close()
