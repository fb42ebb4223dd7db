"""Notifications and critical alerts, end to end: stored, published QoS 1 to the
user's own topic, listed and acknowledged through the api; a critical biopsy result
is re-sent and then escalated while nobody acknowledges it, and reviewing it settles
it. Real broker, real database, real api (with short re-send/escalation delays)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import BACKENDS, _require_backend
from tests.support.clinic import Clinic
from tests.support.mqtt import Probe, Received
from tests.support.stack import Stack

RESEND = 1.0
ESCALATE = 4.0
MELANOMA = "Malignant melanoma, superficial spreading, Breslow 0.6 mm"


@pytest.fixture(scope="module", params=BACKENDS)
def alert_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """A stack whose alerts are re-sent every second, twice, and escalated at 4 s."""
    _require_backend(request.param)
    s = Stack.create(
        request.param,
        tmp_path_factory.mktemp(f"alerts-{request.param}"),
        HUB_CRITICAL_RESEND_SECONDS=str(RESEND),
        HUB_CRITICAL_MAX_RESENDS="2",
        HUB_CRITICAL_ESCALATE_SECONDS=str(ESCALATE),
        HUB_NOTIFICATION_TICK_SECONDS="0.2",
    )
    yield s
    s.close()


def inbox(stack: Stack, clinic: Clinic, token: str, user: str) -> Probe:
    """A user's live connection, subscribed to their own notifications."""
    probe = stack.connected_probe(token)
    rc = probe.subscribe(f"tenants/{clinic.tenant}/users/{user}/notifications/+")
    assert not rc.is_failure, rc
    return probe


def wait_notification(probe: Probe, **expected: Any) -> dict[str, Any]:
    def match(m: Received) -> bool:
        body = m.json() if m.payload else {}
        return all(body.get(k) == v for k, v in expected.items())

    msg = probe.wait_for(match)
    body: dict[str, Any] = msg.json()
    assert msg.topic.endswith(f"/users/{body['userId']}/notifications/{body['id']}")
    assert msg.content_type == "application/json"
    assert not msg.retain
    return body


def listed(stack: Stack, token: str, **params: Any) -> list[dict[str, Any]]:
    r = stack.http(token).get("/notifications", params=params)
    assert r.status_code == 200, r.text
    return r.json()["notifications"]  # type: ignore[no-any-return]


def critical_result(clinic: Clinic, diagnosis: str = MELANOMA) -> dict[str, Any]:
    bx = clinic.biopsy(site="left upper back")
    return clinic.post(clinic.lab, f"/biopsies/{bx['id']}/result", {"diagnosis": diagnosis})


def test_critical_result_is_resent_escalated_and_settled_by_review(alert_stack: Stack) -> None:
    stack = alert_stack
    clinic = Clinic.create(stack)
    admin_token = clinic.token("ad-1", "admin")
    provider = inbox(stack, clinic, clinic.provider, "dr-1")
    admin = inbox(stack, clinic, admin_token, "ad-1")
    assert not admin.subscribe(f"tenants/{clinic.tenant}/patients/+/biopsy/#").is_failure
    try:
        bx = critical_result(clinic)
        assert bx["critical"] is True

        first = wait_notification(provider, kind="critical_result", entityId=bx["id"])
        assert first["severity"] == "critical"
        assert first["userId"] == "dr-1"
        assert first["eventType"] == "biopsy:result_received"
        assert first["patientId"] == clinic.patient_id
        assert MELANOMA in first["body"]
        assert "Ada Lovelace" in first["body"]
        assert (first["attempt"], first["version"], first["escalated"]) == (1, 1, False)
        assert first["acknowledgedAt"] is None
        assert listed(stack, clinic.provider)[0]["id"] == first["id"]

        # Nobody acknowledges: re-sent twice, then escalated to the admin.
        for attempt in (2, 3):
            again = wait_notification(provider, id=first["id"], attempt=attempt)
            assert again["escalated"] is False
        escalated = wait_notification(provider, id=first["id"], escalated=True)
        assert escalated["acknowledgedAt"] is None
        alert = wait_notification(admin, kind="escalation", escalationOf=first["id"])
        assert alert["severity"] == "critical"
        assert alert["entityId"] == bx["id"]
        assert MELANOMA in alert["body"]
        event = admin.wait_event("biopsy:escalated", bx["id"]).json()
        assert event["actor"] == "hub.escalation"
        assert event["data"]["notificationId"] == first["id"]
        assert event["data"]["escalatedTo"] == ["ad-1"]
        assert event["data"]["orderingProviderId"] == "dr-1"
        assert event["data"]["attempts"] == 3
        assert [n["id"] for n in listed(stack, admin_token, unacknowledged="true")] == [alert["id"]]
        assert listed(stack, clinic.token("dr-2", "provider")) == []

        # Another provider cannot review it; the ordering provider's review settles
        # the alert and its escalation, for both of them.
        r = stack.http(clinic.token("dr-2", "provider")).post(f"/biopsies/{bx['id']}/review")
        assert r.status_code == 403, r.text
        clinic.post(clinic.provider, f"/biopsies/{bx['id']}/review")
        done = wait_notification(provider, id=first["id"], acknowledgedBy="dr-1")
        assert done["acknowledgedAt"] is not None
        settled = wait_notification(admin, id=alert["id"], acknowledgedBy="dr-1")
        assert settled["acknowledgedAt"] is not None
        assert listed(stack, clinic.provider, unacknowledged="true") == []
        assert listed(stack, admin_token, unacknowledged="true") == []

        # Settled means settled: no re-send or escalation comes after it.
        time.sleep(3 * RESEND)
        later = [m.json() for m in provider.drain() + admin.drain() if "/notifications/" in m.topic]
        assert [n for n in later if n["version"] > settled["version"]] == []
    finally:
        provider.close()
        admin.close()


def test_acknowledging_stops_resends_and_escalation(alert_stack: Stack) -> None:
    stack = alert_stack
    clinic = Clinic.create(stack)
    provider = inbox(stack, clinic, clinic.provider, "dr-1")
    try:
        bx = critical_result(clinic, "Squamous cell carcinoma in situ")
        first = wait_notification(provider, kind="critical_result", entityId=bx["id"])
        acked = clinic.post(clinic.provider, f"/notifications/{first['id']}/ack")
        assert acked["acknowledgedBy"] == "dr-1"
        assert acked["acknowledgedAt"] is not None
        wait_notification(provider, id=first["id"], acknowledgedBy="dr-1")
        # Past the escalation time: nothing was escalated, nothing re-sent.
        time.sleep(ESCALATE + 1)
        r = stack.http(clinic.admin).get("/events", params={"types": "biopsy:escalated"})
        assert r.json()["events"] == []
        assert listed(stack, clinic.token("ad-1", "admin")) == []
        later = [m.json() for m in provider.drain() if "/notifications/" in m.topic]
        assert [n for n in later if n["version"] > acked["version"]] == []
        # Acknowledging is not reviewing: the result still waits for its review.
        r = stack.http(clinic.provider).get(f"/biopsies/{bx['id']}")
        assert r.json()["status"] == "resulted"
    finally:
        provider.close()


def test_result_while_the_provider_is_offline_waits_for_them(stack: Stack) -> None:
    """The browser is closed when the result arrives: the alert is listed by the api and
    the broker holds it on the provider's persistent session until they come back."""
    clinic = Clinic.create(stack)
    creds = stack.credentials(clinic.provider)
    probe = stack.reconnect(creds)
    assert not probe.subscribe(f"tenants/{clinic.tenant}/users/dr-1/notifications/+").is_failure
    probe.close()

    bx = critical_result(clinic)
    [pending] = listed(stack, clinic.provider, unacknowledged="true")
    assert pending["entityId"] == bx["id"]

    probe = stack.reconnect(creds)
    try:
        got = wait_notification(probe, id=pending["id"])
        assert got["kind"] == "critical_result"
    finally:
        probe.close()


def test_benign_result_alerts_nobody_but_concerning_does(stack: Stack) -> None:
    clinic = Clinic.create(stack)
    benign = critical_result(clinic, "Seborrheic keratosis, irritated")
    assert benign["critical"] is False
    assert listed(stack, clinic.provider) == []
    flagged = critical_result(clinic, "Atypical melanocytic proliferation")
    assert flagged["critical"] is False
    bx = clinic.biopsy()
    lab_flagged = clinic.post(
        clinic.lab,
        f"/biopsies/{bx['id']}/result",
        {"diagnosis": "Atypical melanocytic proliferation", "concerning": True},
    )
    assert lab_flagged["critical"] is True
    assert [n["entityId"] for n in listed(stack, clinic.provider)] == [bx["id"]]


def test_claim_denial_notifies_every_billing_user(stack: Stack) -> None:
    clinic = Clinic.create(stack)
    bl2 = clinic.token("bl-2", "billing")
    billing = [inbox(stack, clinic, clinic.billing, "bl-1"), inbox(stack, clinic, bl2, "bl-2")]
    try:
        claim = clinic.claim(submitted=True)
        body = {"status": "denied", "reason": "CO-50 not medically necessary"}
        clinic.post(clinic.billing, f"/claims/{claim['id']}/status", body)
        got = [wait_notification(p, kind="claim_denied", entityId=claim["id"]) for p in billing]
        assert [n["userId"] for n in got] == ["bl-1", "bl-2"]
        for n in got:
            assert n["severity"] == "alert"
            assert n["eventType"] == "claim:denied"
            assert "CO-50" in n["body"]
        assert listed(stack, clinic.provider) == []
        # The api lists exactly what the broker delivered.
        assert listed(stack, clinic.billing) == [got[0]]

        # Each billing user acknowledges their own; nobody acknowledges another's.
        mine, theirs = got
        r = stack.http(clinic.billing).post(f"/notifications/{theirs['id']}/ack")
        assert r.status_code == 404, r.text
        acked = clinic.post(clinic.billing, f"/notifications/{mine['id']}/ack")
        assert acked["version"] == mine["version"] + 1
        again = clinic.post(clinic.billing, f"/notifications/{mine['id']}/ack")
        assert again == acked  # acknowledging twice changes nothing
        assert listed(stack, clinic.billing, unacknowledged="true") == []
        assert [n["id"] for n in listed(stack, bl2, unacknowledged="true")] == [theirs["id"]]
        # Acknowledged ones stay listed, after the open ones.
        assert [n["id"] for n in listed(stack, clinic.billing)] == [mine["id"]]
    finally:
        for p in billing:
            p.close()


def test_prior_auth_denial_notifies_requester_and_billing(stack: Stack) -> None:
    clinic = Clinic.create(stack)
    pa = clinic.post(
        clinic.billing,
        "/prior-auths",
        {
            "patientId": clinic.patient_id,
            "payerId": "bcbs",
            "item": "Dupilumab",
            "requestingProviderId": "dr-2",
        },
    )
    clinic.post(
        clinic.billing, f"/prior-auths/{pa['id']}/status", {"status": "denied", "reason": "step"}
    )
    for user, role in (("dr-2", "provider"), ("bl-1", "billing"), ("bl-2", "billing")):
        [n] = listed(stack, clinic.token(user, role))
        assert (n["kind"], n["entityId"], n["eventType"]) == (
            "prior_auth_denied",
            pa["id"],
            "prior_auth:denied",
        )
    assert listed(stack, clinic.provider) == []  # dr-1 did not request it


def test_unacknowledged_come_first(stack: Stack) -> None:
    clinic = Clinic.create(stack)
    older, newer = (critical_result(clinic) for _ in range(2))
    notes = listed(stack, clinic.provider)
    assert [n["entityId"] for n in notes] == [newer["id"], older["id"]]
    clinic.post(clinic.provider, f"/notifications/{notes[0]['id']}/ack")
    assert [n["entityId"] for n in listed(stack, clinic.provider)] == [older["id"], newer["id"]]


def test_notification_of_another_tenant_is_unknown(stack: Stack) -> None:
    mine, other = Clinic.create(stack), Clinic.create(stack)
    critical_result(other)
    [theirs] = listed(stack, other.provider)
    r = stack.http(mine.provider).post(f"/notifications/{theirs['id']}/ack")
    assert r.status_code == 404, r.text
    assert listed(stack, mine.provider) == []
    assert listed(stack, other.provider, unacknowledged="true")[0]["id"] == theirs["id"]
