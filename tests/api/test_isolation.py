"""Tenant isolation, enforced by the broker and the database: a real client holding
tenant A's credentials tries to cross into tenant B and gets nothing."""

from __future__ import annotations

import json

import pytest

from tests.support.clinic import Clinic
from tests.support.mqtt import Probe
from tests.support.stack import Stack

NOT_AUTHORIZED = 0x87


def _rc(code: object) -> int:
    return int(getattr(code, "value", code))  # paho ReasonCode -> int


@pytest.fixture
def intruder(stack: Stack, clinic: Clinic) -> Probe:
    probe = stack.connected_probe(clinic.front_desk)
    yield probe
    probe.close()


def test_subscriptions_outside_own_tenant_are_refused(
    stack: Stack, clinic: Clinic, other_clinic: Clinic, intruder: Probe
) -> None:
    b = other_clinic.tenant
    refused = [
        f"tenants/{b}/patients/#",
        f"tenants/{b}/patients/+/appointment/#",
        f"tenants/{b}/meta/seq",
        f"tenants/{b}/#",
        "tenants/+/patients/#",
        "tenants/#",
        "#",
        "+/+/patients/#",
        "$SYS/#",
        "$CONTROL/#",
        "$CONTROL/dynamic-security/v1/response",
        f"tenants/{clinic.tenant}/users/someone-else/#",
        f"tenants/{clinic.tenant}/#",  # wider than what the session may read
    ]
    for topic in refused:
        assert _rc(intruder.subscribe(topic)) == NOT_AUTHORIZED, topic
    allowed = [
        f"tenants/{clinic.tenant}/patients/#",
        f"tenants/{clinic.tenant}/patients/+/appointment/#",
        f"tenants/{clinic.tenant}/meta/seq",
        f"tenants/{clinic.tenant}/users/fd-1/#",
    ]
    for topic in allowed:
        assert not intruder.subscribe(topic).is_failure, topic


def test_other_tenants_events_never_arrive(
    stack: Stack, clinic: Clinic, other_clinic: Clinic, intruder: Probe
) -> None:
    # Everything the intruder may subscribe to, plus attempts that are refused.
    for topic in (
        f"tenants/{clinic.tenant}/patients/#",
        f"tenants/{clinic.tenant}/meta/#",
        f"tenants/{other_clinic.tenant}/#",
        "#",
    ):
        intruder.subscribe(topic)
    theirs = other_clinic.book()
    # A barrier: our own event, published after theirs by the same relay connection.
    ours = clinic.book()
    barrier = intruder.wait_event("appointment:created", ours["id"])
    seen = [barrier, *intruder.drain()]
    for m in seen:
        assert m.topic.startswith(f"tenants/{clinic.tenant}/"), m.topic
        assert other_clinic.tenant.encode() not in m.payload
        assert theirs["id"].encode() not in m.payload


def test_publishes_from_a_session_reach_nobody(
    stack: Stack, clinic: Clinic, other_clinic: Clinic, intruder: Probe
) -> None:
    listener = stack.connected_probe(other_clinic.front_desk)
    own_listener = stack.connected_probe(clinic.admin)
    try:
        listener.subscribe(f"tenants/{other_clinic.tenant}/patients/#")
        own_listener.subscribe(f"tenants/{clinic.tenant}/patients/#")
        forged = json.dumps({"id": "forged", "type": "appointment:cancelled", "seq": 999999})
        targets = [
            f"tenants/{other_clinic.tenant}/patients/{other_clinic.patient_id}/appointment/a-x/cancelled",
            f"tenants/{clinic.tenant}/patients/{clinic.patient_id}/appointment/a-x/cancelled",
            f"tenants/{clinic.tenant}/meta/seq",
            f"tenants/{clinic.tenant}/users/fd-1/notifications/n-1",
            "$CONTROL/dynamic-security/v1",
        ]
        for topic in targets:
            assert _rc(intruder.publish(topic, forged)) == NOT_AUTHORIZED, topic
        # Barriers in both tenants prove the listeners were live when the forgeries went out.
        b = other_clinic.book()
        listener.wait_event("appointment:created", b["id"])
        a = clinic.book()
        own_listener.wait_event("appointment:created", a["id"])
        for m in listener.drain() + own_listener.drain():
            assert b"forged" not in m.payload
        # The broker is still enforcing the same rules: no dynsec change went through.
        assert _rc(intruder.subscribe(f"tenants/{other_clinic.tenant}/#")) == NOT_AUTHORIZED
    finally:
        listener.close()
        own_listener.close()


def test_session_takeover_across_tenants_is_refused(
    stack: Stack, clinic: Clinic, other_clinic: Clinic
) -> None:
    """Mosquitto #3553: any login may take over another client id's session. Every
    issued client is bound to its client id, so B's login with A's id is refused and
    A's persistent session (and its queued events) stays A's."""
    victim_creds = stack.credentials(clinic.front_desk)
    victim = stack.probe(victim_creds, transport="tcp", clean_start=False, session_expiry=600)
    assert not victim.connect().is_failure
    victim.subscribe(f"tenants/{clinic.tenant}/patients/#")
    victim.close()

    attacker_creds = stack.credentials(other_clinic.front_desk)
    attacker = stack.probe(
        attacker_creds,
        transport="tcp",
        client_id=victim_creds["clientId"],
        clean_start=False,
        session_expiry=600,
    )
    rc = attacker.connect()
    assert rc.is_failure
    assert _rc(rc) in (0x85, 0x86, 0x87)  # client id not valid / bad credentials / not authorized

    # Events queued for the victim while away are still delivered to the victim only.
    appt = clinic.book()
    back = stack.reconnect(victim_creds)
    try:
        assert back.session_present
        back.wait_event("appointment:created", appt["id"])
    finally:
        back.close()


def test_credentials_work_only_with_their_own_client_id(stack: Stack, clinic: Clinic) -> None:
    creds = stack.credentials(clinic.front_desk)
    probe = stack.probe(creds, transport="tcp", client_id=creds["clientId"] + "x")
    assert probe.connect().is_failure


def test_rest_refuses_other_tenants_ids(stack: Stack, clinic: Clinic, other_clinic: Clinic) -> None:
    theirs = other_clinic.book()
    http = stack.http(clinic.front_desk)
    assert http.get(f"/appointments/{theirs['id']}").status_code == 404
    assert http.get(f"/patients/{other_clinic.patient_id}").status_code == 404
    before = clinic.latest_seq()
    r = http.post(f"/appointments/{theirs['id']}/status", json={"status": "cancelled"})
    assert r.status_code == 404
    assert r.json()["error"] == "not_found"
    r = http.post(
        f"/appointments/{theirs['id']}/reschedule",
        json={"scheduledStart": "2030-01-01T10:00:00Z", "scheduledEnd": "2030-01-01T10:30:00Z"},
    )
    assert r.status_code == 404
    r = http.post(
        "/appointments",
        json={
            "patientId": other_clinic.patient_id,
            "providerId": clinic.provider_id,
            "locationId": clinic.location_id,
            "scheduledStart": "2030-01-01T10:00:00Z",
            "scheduledEnd": "2030-01-01T10:30:00Z",
        },
    )
    assert r.status_code == 404
    assert clinic.latest_seq() == before
    # Their appointment is untouched, and their replay does not show our attempts.
    mine = stack.http(other_clinic.front_desk).get(f"/appointments/{theirs['id']}").json()
    assert mine["status"] == "scheduled"
    assert mine["version"] == 1
    # Replay and listings never leak across tenants.
    events = http.get("/events", params={"after": 0}).json()["events"]
    assert all(e["tenant"] == clinic.tenant for e in events)
    assert all(p["id"] != other_clinic.patient_id for p in http.get("/patients").json())


def test_the_hubs_admin_account_reads_no_tenant_topics(stack: Stack) -> None:
    """Least privilege: the dynsec admin drives $CONTROL and reads $SYS, nothing else."""
    admin = stack.broker.admin_probe()
    assert not admin.connect().is_failure
    try:
        for topic in ("#", "tenants/#", "tenants/+/patients/#"):
            assert _rc(admin.subscribe(topic)) == NOT_AUTHORIZED, topic
        assert not admin.subscribe("$SYS/broker/version").is_failure
        assert not admin.subscribe("$CONTROL/dynamic-security/v1/response").is_failure
    finally:
        admin.close()
    mode = stack.broker.layout.dynsec_file.stat().st_mode & 0o777
    assert mode == 0o600
