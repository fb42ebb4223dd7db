"""Integration partners: grants, secrets, scoped broker credentials enforced by the
real broker, access tokens for replay, removal (contract, section 11)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.support.clinic import Clinic
from tests.support.mqtt import Probe, Received
from tests.support.stack import Stack

NOT_AUTHORIZED = 0x87
ADMINISTRATIVE_ACTION = 0x98


def register(
    clinic: Clinic, event_types: list[str], partner_id: str | None = None
) -> dict[str, Any]:
    return clinic.post(
        clinic.admin,
        "/partners",
        {"id": partner_id or f"p-{uuid.uuid4().hex[:8]}", "name": "Lab", "eventTypes": event_types},
    )


def partner_credentials(stack: Stack, secret: str) -> httpx.Response:
    return stack.http(secret).post("/partners/credentials")


def connect(stack: Stack, creds: dict[str, Any]) -> Probe:
    """Connect as a partner does: TCP, persistent session, every granted filter."""
    probe = stack.reconnect(creds)
    for topic_filter in creds["filters"]:
        assert probe.subscribe(topic_filter).value == 1, topic_filter
    return probe


def every_domain(clinic: Clinic) -> None:
    """Changes in every domain: each commits and emits its events."""
    fd, billing = clinic.front_desk, clinic.billing
    appt = clinic.book(start=datetime.now(UTC) + timedelta(minutes=20))
    clinic.post(fd, f"/appointments/{appt['id']}/status", {"status": "checked_in"})
    r = clinic.stack.http(fd).put(f"/patients/{clinic.patient_id}", json={"phone": "555-0100"})
    assert r.status_code == 200, r.text
    biopsy = clinic.biopsy()
    clinic.post(clinic.lab, f"/biopsies/{biopsy['id']}/result", {"diagnosis": "benign nevus"})
    denied = clinic.claim(submitted=True)
    clinic.post(billing, f"/claims/{denied['id']}/status", {"status": "denied", "reason": "CO-16"})
    paid = clinic.claim(15000, submitted=True)
    clinic.post(
        billing, f"/claims/{paid['id']}/status", {"status": "paid", "paidAmountCents": 9000}
    )
    clinic.post(
        fd, "/payments", {"patientId": clinic.patient_id, "amountCents": 2500, "method": "card"}
    )
    pa = clinic.post(
        clinic.provider,
        "/prior-auths",
        {"patientId": clinic.patient_id, "payerId": "aetna", "item": "MOHS"},
    )
    clinic.post(billing, f"/prior-auths/{pa['id']}/status", {"status": "approved"})


def replay_all(stack: Stack, token: str, **params: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    after = 0
    while True:
        r = stack.http(token).get("/events", params={"after": after, "limit": 1000, **params})
        assert r.status_code == 200, r.text
        page = r.json()["events"]
        if not page:
            return events
        events += page
        after = page[-1]["seq"]


def drain_until_quiet(probe: Probe, expected: int) -> list[Received]:
    got: list[Received] = []
    while len(got) < expected:
        got.append(probe.wait_for(lambda m: True))
    # Anything more that would arrive (it must not): the relay has published everything.
    return got + probe.drain()


def test_admins_register_list_rotate_and_remove_partners(
    clinic: Clinic, other_clinic: Clinic
) -> None:
    made = register(clinic, ["claim:*", "claim:denied", "biopsy:result_received"], "lab-1")
    assert made["id"] == "lab-1"
    # claim:denied is covered by claim:* and folded into it.
    assert made["eventTypes"] == ["biopsy:result_received", "claim:*"]
    assert made["secret"].startswith("hps_")
    listed = clinic.stack.http(clinic.admin).get("/partners").json()
    assert [p["id"] for p in listed] == ["lab-1"]
    assert "secret" not in listed[0]
    assert made["secret"] not in str(listed)
    # Only admins, and only their own tenant's partners.
    assert clinic.stack.http(clinic.billing).get("/partners").status_code == 403
    r = clinic.stack.http(clinic.front_desk).post(
        "/partners", json={"id": "x", "name": "X", "eventTypes": ["claim:*"]}
    )
    assert r.status_code == 403
    assert other_clinic.stack.http(other_clinic.admin).get("/partners").json() == []
    other = other_clinic.stack.http(other_clinic.admin)
    assert other.post("/partners/lab-1/secret").status_code == 404
    assert other.delete("/partners/lab-1").status_code == 404
    # The same id in another tenant is another partner.
    register(other_clinic, ["claim:*"], "lab-1")
    admin = clinic.stack.http(clinic.admin)
    dup = admin.post("/partners", json={"id": "lab-1", "name": "Again", "eventTypes": ["claim:*"]})
    assert dup.status_code == 409
    assert admin.delete("/partners/lab-1").status_code == 204
    assert admin.get("/partners").json() == []
    # Again (a retry after a failed revocation): nothing more to do, still 204.
    assert admin.delete("/partners/lab-1").status_code == 204
    assert admin.delete("/partners/never-was").status_code == 404
    assert admin.post("/partners/lab-1/secret").status_code == 404
    reuse = admin.post("/partners", json={"id": "lab-1", "name": "New", "eventTypes": ["claim:*"]})
    assert reuse.status_code == 409
    assert "removed" in reuse.json()["message"]
    assert other.get("/partners").json()[0]["id"] == "lab-1"


def test_bad_grants_are_refused_and_change_nothing(clinic: Clinic) -> None:
    admin = clinic.stack.http(clinic.admin)
    for body in (
        {"id": "p1", "name": "Lab", "eventTypes": []},
        {"id": "p1", "name": "Lab", "eventTypes": ["claim:refunded"]},
        {"id": "p1", "name": "Lab", "eventTypes": ["invoice:*"]},
        {"id": "p1", "name": "Lab", "eventTypes": ["claim"]},
        {"id": "p1", "name": "Lab", "eventTypes": ["*"]},
        {"id": "p1", "name": "Lab", "eventTypes": [7]},
        {"id": "p1", "name": "Lab", "eventTypes": "claim:*"},
        {"id": "p/1", "name": "Lab", "eventTypes": ["claim:*"]},
        {"id": "p1", "name": "", "eventTypes": ["claim:*"]},
        {"id": "p1", "eventTypes": ["claim:*"]},
        {"id": "p1", "name": "Lab", "eventTypes": ["claim:*"], "secret": "hps_mine"},
    ):
        r = admin.post("/partners", json=body)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["error"] == "invalid_request"
    r = admin.post("/partners", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert admin.get("/partners").json() == []


def test_a_claims_partner_receives_every_claim_event_and_nothing_else(
    clinic: Clinic, other_clinic: Clinic
) -> None:
    made = register(clinic, ["claim:*"])
    r = partner_credentials(clinic.stack, made["secret"])
    assert r.status_code == 200, r.text
    creds = r.json()
    t = clinic.tenant
    assert creds["kind"] == "partner"
    assert creds["clientId"] == f"{t}.partner.{made['id']}"
    assert creds["tenant"] == t
    assert creds["filters"] == [f"tenants/{t}/patients/+/claim/+/+"]
    assert creds["mqttUrl"].startswith("mqtt://")
    probe = connect(clinic.stack, creds)
    try:
        every_domain(clinic)
        every_domain(other_clinic)  # the same workload in another tenant
        clinic.stack.wait_published()
        admin_view = replay_all(clinic.stack, clinic.admin)
        claims = [e for e in admin_view if e["type"].startswith("claim:")]
        assert {e["type"] for e in admin_view} - {e["type"] for e in claims}  # others happened
        received = drain_until_quiet(probe, len(claims))
        assert [m.json()["id"] for m in received] == [e["id"] for e in claims]
        assert {m.topic.split("/")[4] for m in received} == {"claim"}
        # Replay with the access token: the granted types only, seqs with holes.
        partner_view = replay_all(clinic.stack, creds["accessToken"])
        assert [e["id"] for e in partner_view] == [e["id"] for e in claims]
        page = clinic.stack.http(creds["accessToken"]).get("/events", params={"after": 0})
        assert page.json()["latestSeq"] == admin_view[-1]["seq"]
        one = clinic.stack.http(creds["accessToken"]).get(
            "/events", params={"after": 0, "types": "claim:denied"}
        )
        assert [e["type"] for e in one.json()["events"]] == ["claim:denied"]
    finally:
        probe.close()


def test_the_broker_refuses_anything_wider_than_the_grant(
    clinic: Clinic, other_clinic: Clinic
) -> None:
    made = register(clinic, ["claim:*", "biopsy:result_received"])
    creds = partner_credentials(clinic.stack, made["secret"]).json()
    t, o = clinic.tenant, other_clinic.tenant
    probe = clinic.stack.reconnect(creds)
    try:
        for refused in (
            "#",
            f"tenants/{t}/#",
            f"tenants/{t}/patients/#",
            f"tenants/{t}/patients/+/+/+/+",
            f"tenants/{t}/patients/+/biopsy/+/+",
            f"tenants/{t}/patients/+/claim/#",
            f"tenants/{t}/patients/{clinic.patient_id}/claim/c-1",  # a snapshot
            f"tenants/{t}/meta/#",
            f"tenants/{t}/users/bl-1/#",
            f"tenants/{t}/kiosks/+/requests",
            f"tenants/{o}/patients/+/claim/+/+",
            "tenants/+/patients/+/claim/+/+",
            "$SYS/#",
            "$CONTROL/#",
        ):
            assert probe.subscribe(refused).value == NOT_AUTHORIZED, refused
        # Narrower than the grant is fine: one patient's claims.
        narrow = f"tenants/{t}/patients/{clinic.patient_id}/claim/+/+"
        assert probe.subscribe(narrow).value == 1
        assert probe.subscribe(f"tenants/{t}/patients/+/biopsy/+/result_received").value == 1
        for topic in (
            f"tenants/{t}/patients/{clinic.patient_id}/claim/c-1/denied",
            f"tenants/{t}/meta/seq",
            f"tenants/{o}/patients/p-1/claim/c-1/paid",
            "$CONTROL/hub-auth/v1",
        ):
            assert probe.publish(topic, "{}").value == NOT_AUTHORIZED, topic
    finally:
        probe.close()


def test_the_access_token_reads_granted_events_and_nothing_else(
    clinic: Clinic, other_clinic: Clinic
) -> None:
    made = register(clinic, ["claim:*"])
    token = partner_credentials(clinic.stack, made["secret"]).json()["accessToken"]
    http = clinic.stack.http(token)
    r = http.get("/events", params={"after": 0, "types": "appointment:created"})
    assert r.status_code == 403
    assert http.get("/events", params={"types": "no:such"}).status_code == 422
    # Nowhere else: it is no user's token.
    for method, path in (
        ("GET", "/appointments"),
        ("GET", "/notifications"),
        ("POST", "/realtime/credentials"),
        ("GET", "/events/catalog"),
        ("GET", "/partners"),
        ("POST", "/events"),
    ):
        assert http.request(method, path, json={}).status_code == 401, path
    # The broker password is not an access token, nor the other way round.
    creds = partner_credentials(clinic.stack, made["secret"]).json()
    assert clinic.stack.http(creds["password"]).get("/events").status_code == 401
    refused = clinic.stack.probe({**creds, "password": creds["accessToken"]}, transport="tcp")
    assert refused.connect().is_failure
    # A forged access token (another key) and a tampered one.
    head, body, _sig = token.split(".")
    assert clinic.stack.http(f"{head}.{body}.AAAA").get("/events").status_code == 401
    other = register(other_clinic, ["claim:*"])
    other_token = partner_credentials(clinic.stack, other["secret"]).json()["accessToken"]
    other_clinic.claim()
    mine = replay_all(clinic.stack, other_token)
    assert mine
    assert {e["tenant"] for e in mine} == {other_clinic.tenant}


def test_a_rotated_secret_keeps_working_for_a_day_without_a_gap(clinic: Clinic) -> None:
    made = register(clinic, ["claim:*"])
    first = made["secret"]
    creds = partner_credentials(clinic.stack, first).json()
    probe = connect(clinic.stack, creds)
    try:
        rotated = clinic.post(clinic.admin, f"/partners/{made['id']}/secret")
        second = rotated["secret"]
        assert second != first
        assert rotated["previousSecretExpiresAt"] is not None
        # Both work; same client id, so the persistent session carries on.
        for secret in (first, second):
            r = partner_credentials(clinic.stack, secret)
            assert r.status_code == 200
            assert r.json()["clientId"] == creds["clientId"]
        # The connection made with the first secret's credentials is untouched.
        claim = clinic.claim()
        got = probe.wait_event("claim:created", claim["id"])
        assert got.json()["data"]["id"] == claim["id"]
        # A second rotation ends the first secret at once: at most two ever work.
        third = clinic.post(clinic.admin, f"/partners/{made['id']}/secret")["secret"]
        assert partner_credentials(clinic.stack, first).status_code == 401
        assert partner_credentials(clinic.stack, second).status_code == 200
        assert partner_credentials(clinic.stack, third).status_code == 200
    finally:
        probe.close()


def test_a_removed_partner_is_disconnected_and_refused(clinic: Clinic) -> None:
    made = register(clinic, ["claim:*"])
    creds = partner_credentials(clinic.stack, made["secret"]).json()
    probe = connect(clinic.stack, creds)
    try:
        assert clinic.stack.http(clinic.admin).delete(f"/partners/{made['id']}").status_code == 204
        assert probe.wait_disconnect().value == ADMINISTRATIVE_ACTION
    finally:
        probe.close()
    assert partner_credentials(clinic.stack, made["secret"]).status_code == 401
    assert clinic.stack.http(creds["accessToken"]).get("/events").status_code == 401
    again = clinic.stack.probe(creds, transport="tcp", clean_start=False, session_expiry=3600)
    assert again.connect().is_failure


def test_partner_secrets_that_are_not_ours_are_refused(clinic: Clinic) -> None:
    made = register(clinic, ["claim:*"])
    for secret in (
        "hps_" + "A" * 43,
        made["secret"] + "x",
        made["secret"][:-1],
        "kds_" + made["secret"][4:],
        "hps_" + "A" * 5000,
    ):
        r = partner_credentials(clinic.stack, secret)
        assert r.status_code == 401, secret[:12]
        assert r.json()["error"] == "unauthorized"
    assert clinic.stack.http().post("/partners/credentials").status_code == 401
    # A staff token is no partner secret.
    assert partner_credentials(clinic.stack, clinic.admin).status_code == 401


def test_what_partners_are_given_is_audited_without_phi_or_secrets(clinic: Clinic) -> None:
    made = register(clinic, ["claim:*"], "lab-9")
    creds = partner_credentials(clinic.stack, made["secret"]).json()
    clinic.claim()
    clinic.stack.wait_published()
    replayed = replay_all(clinic.stack, creds["accessToken"])
    rotated = clinic.post(clinic.admin, "/partners/lab-9/secret")
    assert clinic.stack.http(clinic.admin).delete("/partners/lab-9").status_code == 204
    r = clinic.stack.http(clinic.admin).get(
        "/audit", params={"kind": "partner,session,events", "limit": 1000}
    )
    assert r.status_code == 200, r.text
    entries = r.json()["entries"]
    mine = [
        e for e in entries if e["actor"] == "lab-9" or e["subject"] in ("lab-9", creds["clientId"])
    ]
    kinds = [(e["kind"], e["actorKind"], e["actor"]) for e in mine]
    assert kinds[0] == ("partner.registered", "user", "ad-1")
    assert ("session.issued", "partner", "lab-9") in kinds
    assert ("events.replayed", "partner", "lab-9") in kinds
    assert ("partner.secret_rotated", "user", "ad-1") in kinds
    assert ("partner.removed", "user", "ad-1") in kinds
    assert ("session.revoked", "user", "ad-1") in kinds
    registered = mine[0]["details"]
    assert registered == {"eventTypes": ["claim:*"]}
    replay_row = next(e for e in mine if e["kind"] == "events.replayed")
    assert replay_row["details"]["count"] == len(replayed)
    text = str(entries)
    for secret_or_phi in (
        made["secret"],
        rotated["secret"],
        creds["password"],
        creds["accessToken"],
        "Lovelace",
        "1985-12-10",
    ):
        assert secret_or_phi not in text


def test_repeated_types_are_read_once_and_a_user_cannot_revoke_a_partner_session(
    clinic: Clinic,
) -> None:
    made = register(clinic, ["claim:*"], "p-1")
    creds = partner_credentials(clinic.stack, made["secret"]).json()
    clinic.claim()
    token = creds["accessToken"]
    many = ",".join(["claim:created"] * 140)  # under the 2,000 characters of a types list
    r = clinic.stack.http(token).get("/events", params={"after": 0, "types": many})
    assert r.status_code == 200, r.text
    assert [e["type"] for e in r.json()["events"]] == ["claim:created"]
    # The sessions route is for browser sessions: not for the partner's client id,
    # neither for the admin nor for a user whose id happens to be the partner's.
    for token_of in (clinic.admin, clinic.token("p-1", "front_desk")):
        r = clinic.stack.http(token_of).delete(f"/realtime/credentials/{creds['clientId']}")
        assert r.status_code == 404
    assert partner_credentials(clinic.stack, made["secret"]).status_code == 200
