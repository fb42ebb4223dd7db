"""Alert routing a clinic configures: per-tenant rules (GET/PUT/DELETE /alert-rules)
decide who hears a critical result or a denial, whether it came from the hub's own
routes or from an outside system through POST /events; the escalation chain and its
timings come from the rule; delivery and display are audited. Real broker, database
and api."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.conftest import BACKENDS, _require_backend
from tests.support.clinic import Clinic
from tests.support.stack import Stack

MELANOMA = "Malignant melanoma in situ"
BENIGN = "Seborrheic keratosis"
CARE_TEAM = ["nu-1", "nu-2"]
EVERYBODY = ["dr-1", "dr-2", "dr-3", "nu-1", "nu-2", "bl-1", "bl-2", "ad-1"]
ROLE_OF = {"bl-1": "billing", "bl-2": "billing", "ad-1": "admin", "nu-1": "front_desk"}


@pytest.fixture(scope="module", params=BACKENDS)
def routing_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """A stack whose alert worker looks for due alerts five times a second (the
    rules themselves carry the short re-send and escalation timings)."""
    _require_backend(request.param)
    s = Stack.create(
        request.param,
        tmp_path_factory.mktemp(f"routing-{request.param}"),
        HUB_NOTIFICATION_TICK_SECONDS="0.2",
    )
    yield s
    s.close()


def routing_clinic(stack: Stack) -> Clinic:
    """A clinic with a covering provider dr-3 and two care team members."""
    clinic = Clinic.create(stack)
    http = stack.http(clinic.admin)
    for staff in (
        {"id": "dr-3", "name": "Dr. Three", "isProvider": True, "roles": ["provider"]},
        {"id": "nu-1", "name": "Nurse One", "roles": ["front_desk"]},
        {"id": "nu-2", "name": "Nurse Two", "roles": ["front_desk"]},
    ):
        r = http.post("/staff", json=staff)
        assert r.status_code == 201, r.text
    return clinic


def token_of(clinic: Clinic, user: str) -> str:
    role = ROLE_OF.get(user, "front_desk" if user.startswith("nu") else "provider")
    return clinic.token(user, role)


def listed(clinic: Clinic, user: str) -> list[dict[str, Any]]:
    r = clinic.stack.http(token_of(clinic, user)).get("/notifications")
    assert r.status_code == 200, r.text
    return r.json()["notifications"]  # type: ignore[no-any-return]


def about(clinic: Clinic, user: str, event_id: str) -> list[dict[str, Any]]:
    return [n for n in listed(clinic, user) if n["eventId"] == event_id]


def wait_until(what: str, check: Callable[[], Any], timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def put_rule(clinic: Clinic, kind: str, body: dict[str, Any]) -> dict[str, Any]:
    r = clinic.stack.http(clinic.admin).put(f"/alert-rules/{kind}", json=body)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def external_result(
    clinic: Clinic, diagnosis: str, *, biopsy_id: str, token: str | None = None
) -> dict[str, Any]:
    """An outside lab's result, through POST /events (no biopsy of the hub's own)."""
    r = clinic.stack.http(token or clinic.lab).post(
        "/events",
        json={
            "type": "biopsy:result_received",
            "patientId": clinic.patient_id,
            "entityId": biopsy_id,
            "data": {
                "id": biopsy_id,
                "patientId": clinic.patient_id,
                "orderingProviderId": "dr-1",
                "site": "left shoulder",
                "status": "resulted",
                "diagnosis": diagnosis,
            },
        },
    )
    assert r.status_code == 202, r.text
    return r.json()  # type: ignore[no-any-return]


CARE_RULE = {
    "naturalRecipient": True,
    "coveringProviderId": "dr-3",
    "careTeam": CARE_TEAM,
    "resendSeconds": 0.5,
    "maxResends": 1,
    "escalateAfterSeconds": 2,
    "escalateTo": {"staffIds": ["dr-2"]},
}


def test_a_concerning_outside_result_reaches_the_care_team_and_escalates_per_the_rule(
    routing_stack: Stack,
) -> None:
    clinic = routing_clinic(routing_stack)
    rule = put_rule(clinic, "biopsy:result_received", CARE_RULE)
    assert rule["configured"] is True
    assert rule["careTeam"] == CARE_TEAM
    assert rule["version"] == 1

    benign = external_result(clinic, BENIGN, biopsy_id="ext-1")
    critical = external_result(clinic, MELANOMA, biopsy_id="ext-2")
    recipients = ["dr-1", "dr-3", *CARE_TEAM]
    for user in recipients:
        (n,) = wait_until(f"{user}'s alert", lambda u=user: about(clinic, u, critical["id"]))
        assert n["kind"] == "critical_result"
        assert n["severity"] == "critical"
        assert n["entity"] == "biopsy"
        assert n["entityId"] == "ext-2"
        assert MELANOMA in n["body"]
    # The router routes in seq order: the benign result before it reached nobody,
    # and nobody outside the rule heard of the critical one.
    for user in EVERYBODY:
        assert about(clinic, user, benign["id"]) == []
    for user in ("dr-2", "bl-1", "ad-1"):
        assert about(clinic, user, critical["id"]) == []

    # Nobody acknowledges: re-sent once, then escalated to dr-2 (the rule's chain), once.
    def escalated() -> list[dict[str, Any]]:
        return [n for n in listed(clinic, "dr-2") if n["kind"] == "escalation"]

    (escalation,) = wait_until("the escalation", escalated)
    lead = wait_until(
        "the escalated alert",
        lambda: [n for n in about(clinic, "dr-1", critical["id"]) if n["escalated"]],
    )[0]
    assert lead["attempt"] == 2
    assert escalation["escalationOf"] == lead["id"]
    assert escalation["entityId"] == "ext-2"
    assert escalation["severity"] == "critical"
    assert about(clinic, "ad-1", critical["id"]) == []  # not the default chain
    replay = clinic.stack.http(clinic.front_desk).get(
        "/events", params={"after": 0, "types": "biopsy:escalated"}
    )
    (event,) = replay.json()["events"]
    assert event["data"]["escalatedTo"] == ["dr-2"]
    assert event["data"]["orderingProviderId"] == "dr-1"

    # The covering provider acknowledges: the alert is settled for all of its
    # recipients, and the escalation with it.
    mine = about(clinic, "dr-3", critical["id"])[0]
    r = clinic.stack.http(token_of(clinic, "dr-3")).post(f"/notifications/{mine['id']}/ack")
    assert r.status_code == 200, r.text
    for user in (*recipients, "dr-2"):
        assert all(n["acknowledgedBy"] == "dr-3" for n in listed(clinic, user)), user
    time.sleep(1)  # past a re-send interval: nothing more is sent
    assert len(escalated()) == 1


def test_a_routes_own_result_follows_the_same_rule_once(routing_stack: Stack) -> None:
    clinic = routing_clinic(routing_stack)
    put_rule(clinic, "biopsy:result_received", {**CARE_RULE, "escalateAfterSeconds": 600})
    bx = clinic.biopsy()
    clinic.post(clinic.lab, f"/biopsies/{bx['id']}/result", {"diagnosis": MELANOMA})
    # In the result's own transaction: there as soon as the route answered.
    for user in ("dr-1", "dr-3", *CARE_TEAM):
        assert [n["entityId"] for n in listed(clinic, user)] == [bx["id"]], user
    # The router passes it by: after a later outside event is routed, still one each.
    later = external_result(clinic, MELANOMA, biopsy_id="ext-9")
    wait_until("the later alert", lambda: about(clinic, "nu-1", later["id"]))
    for user in ("dr-1", "dr-3", *CARE_TEAM):
        assert len([n for n in listed(clinic, user) if n["entityId"] == bx["id"]]) == 1


def test_a_clearinghouse_denial_alerts_the_configured_role(routing_stack: Stack) -> None:
    clinic = routing_clinic(routing_stack)
    put_rule(clinic, "claim:denied", {"naturalRecipient": False, "roles": ["billing"]})
    clearinghouse = clinic.token("clearinghouse", "service")
    r = clinic.stack.http(clearinghouse).post(
        "/events",
        json={
            "type": "claim:denied",
            "patientId": clinic.patient_id,
            "entityId": "ext-claim-1",
            "data": {
                "id": "ext-claim-1",
                "patientId": clinic.patient_id,
                "payerId": "aetna",
                "amountCents": 12000,
                "status": "denied",
                "reason": "not covered",
            },
        },
    )
    assert r.status_code == 202, r.text
    event_id = r.json()["id"]
    for user in ("bl-1", "bl-2"):
        (n,) = wait_until(f"{user}'s alert", lambda u=user: about(clinic, u, event_id))
        assert n["kind"] == "claim_denied"
        assert n["severity"] == "alert"
        assert "not covered" in n["body"]
    for user in ("dr-1", "dr-2", "dr-3", "nu-1", "ad-1"):
        assert about(clinic, user, event_id) == []


def test_rules_are_per_tenant(routing_stack: Stack) -> None:
    a = routing_clinic(routing_stack)
    b = routing_clinic(routing_stack)
    put_rule(b, "biopsy:result_received", {**CARE_RULE, "escalateAfterSeconds": 600})
    event = external_result(a, MELANOMA, biopsy_id="ext-a")
    # Tenant A has no rule: its default, the ordering provider only.
    wait_until("A's alert", lambda: about(a, "dr-1", event["id"]))
    for user in ("dr-3", *CARE_TEAM):
        assert about(a, user, event["id"]) == []
        assert listed(b, user) == []
    r = routing_stack.http(a.admin).get("/alert-rules/biopsy:result_received")
    assert r.json()["configured"] is False
    assert r.json()["careTeam"] == []
    assert r.json()["escalateTo"] == {"roles": ["admin"], "staffIds": []}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"careTeam": ["nobody"]}, "careTeam.0"),
        ({"onCall": ["nu-1", "ghost"]}, "onCall.1"),
        ({"coveringProviderId": "nu-1"}, "coveringProviderId"),  # not a provider
        ({"coveringProviderId": "dr-other"}, "coveringProviderId"),  # another tenant's
        ({"escalateTo": {"staffIds": ["dr-other"]}}, "escalateTo.staffIds.0"),
        ({"roles": ["wizard"]}, "roles.0"),
        ({"escalateTo": {"roles": ["service"]}}, "escalateTo.roles.0"),
        ({"naturalRecipient": False}, "naturalRecipient"),  # reaches nobody
        ({"resendSeconds": -1}, "resendSeconds"),
        ({"carTeam": ["nu-1"]}, "carTeam"),  # a typo is refused, not ignored
        ({"escalateAfterSeconds": 60, "escalateTo": {}}, "escalateTo"),
        # A partial body must not switch off the escalation of critical results.
        ({"careTeam": ["nu-1"]}, "escalateAfterSeconds"),
    ],
)
def test_a_bad_rule_is_422_and_changes_nothing(
    routing_stack: Stack, body: dict[str, Any], field: str
) -> None:
    clinic = routing_clinic(routing_stack)
    other = Clinic.create(routing_stack)
    r = routing_stack.http(other.admin).post(
        "/staff", json={"id": "dr-other", "name": "Dr. Other", "isProvider": True}
    )
    assert r.status_code == 201, r.text
    http = routing_stack.http(clinic.admin)
    before = http.get("/alert-rules/biopsy:result_received").json()
    r = http.put("/alert-rules/biopsy:result_received", json=body)
    assert r.status_code == 422, r.text
    assert field in r.text
    assert http.get("/alert-rules/biopsy:result_received").json() == before
    audit = http.get("/audit", params={"kind": "alert_rule"}).json()["entries"]
    assert audit == []


def test_rules_need_an_admin_and_a_known_kind_and_are_audited(routing_stack: Stack) -> None:
    clinic = routing_clinic(routing_stack)
    http = routing_stack.http(clinic.admin)
    provider = routing_stack.http(clinic.provider)
    assert provider.get("/alert-rules").status_code == 403
    assert provider.put("/alert-rules/claim:denied", json={}).status_code == 403
    assert http.put("/alert-rules/appointment:created", json={}).status_code == 404
    kinds = [r["kind"] for r in http.get("/alert-rules").json()["rules"]]
    assert kinds == ["biopsy:result_received", "claim:denied", "prior_auth:denied"]
    put_rule(clinic, "prior_auth:denied", {"onCall": ["dr-2", "dr-2"]})
    rule = http.get("/alert-rules/prior_auth:denied").json()
    assert rule["onCall"] == ["dr-2"]
    assert rule["updatedBy"] == "ad-1"
    assert http.delete("/alert-rules/prior_auth:denied").status_code == 204
    assert http.get("/alert-rules/prior_auth:denied").json()["configured"] is False
    entries = http.get("/audit", params={"kind": "alert_rule"}).json()["entries"]
    assert [(e["kind"], e["subject"], e["actor"]) for e in entries] == [
        ("alert_rule.updated", "prior_auth:denied", "ad-1"),
        ("alert_rule.reset", "prior_auth:denied", "ad-1"),
    ]
    assert entries[0]["details"]["onCall"] == ["dr-2"]


def test_seen_is_audited_once_per_recipient(routing_stack: Stack) -> None:
    clinic = routing_clinic(routing_stack)
    claim = clinic.claim(submitted=True)
    clinic.post(
        clinic.billing, f"/claims/{claim['id']}/status", {"status": "denied", "reason": "x"}
    )
    (n,) = listed(clinic, "bl-1")
    http = routing_stack.http(clinic.billing)
    shown = {"displayedAt": n["createdAt"]}
    r = http.post(f"/notifications/{n['id']}/seen", json=shown)
    assert r.status_code == 200, r.text
    receipt = r.json()
    assert receipt["displayedAt"] is not None
    assert receipt["deliveredAt"] is not None
    assert receipt["acknowledgedAt"] is None
    again = http.post(
        f"/notifications/{n['id']}/seen", json={"displayedAt": "2099-01-01T00:00:00Z"}
    )
    assert again.status_code == 200
    assert again.json() == receipt  # idempotent
    # Not another user's, not without a time zone.
    other = routing_stack.http(token_of(clinic, "bl-2"))
    assert other.post(f"/notifications/{n['id']}/seen", json=shown).status_code == 404
    naive = {"displayedAt": "2026-01-01T00:00:00"}
    assert http.post(f"/notifications/{n['id']}/seen", json=naive).status_code == 422
    assert http.post(f"/notifications/{n['id']}/ack").status_code == 200
    entries = (
        routing_stack.http(clinic.admin)
        .get("/audit", params={"kind": "notification"})
        .json()["entries"]
    )
    assert [(e["kind"], e["actor"], e["subject"]) for e in entries] == [
        ("notification.delivered", "bl-1", n["id"]),
        ("notification.displayed", "bl-1", n["id"]),
        ("notification.acknowledged", "bl-1", n["id"]),
    ]
    # Ids, kinds and times only: nothing of the patient.
    assert all("Lovelace" not in str(e) for e in entries)


def test_kill_9_between_commit_and_routing_routes_once_after_restart(
    private_stack: Stack,
) -> None:
    stack = private_stack
    clinic = routing_clinic(stack)
    put_rule(clinic, "biopsy:result_received", {**CARE_RULE, "escalateAfterSeconds": 600})
    # An api that commits events but does not route them: the state a crash leaves
    # between the writer's commit and the router's transaction.
    stack.api.stop()
    stack.api.env["HUB_ALERT_ROUTER_ENABLED"] = "false"
    stack.api.start()
    events = [external_result(clinic, MELANOMA, biopsy_id=f"ext-k{i}") for i in range(3)]
    time.sleep(0.5)
    assert all(about(clinic, "nu-1", e["id"]) == [] for e in events)
    stack.api.kill()
    stack.api.env["HUB_ALERT_ROUTER_ENABLED"] = "true"
    stack.api.start()
    for e in events:
        for user in ("dr-1", "dr-3", *CARE_TEAM):
            wait_until(f"{user}'s alert", lambda u=user, e=e: about(clinic, u, e["id"]))
    # Routed once; a later kill -9 and restart routes nothing again.
    after = external_result(clinic, MELANOMA, biopsy_id="ext-after")
    wait_until("the later alert", lambda: about(clinic, "nu-2", after["id"]))
    stack.api.kill()
    stack.api.start()
    last = external_result(clinic, MELANOMA, biopsy_id="ext-last")
    wait_until("the last alert", lambda: about(clinic, "nu-2", last["id"]))
    for e in [*events, after, last]:
        for user in ("dr-1", "dr-3", *CARE_TEAM):
            assert len(about(clinic, user, e["id"])) == 1, (user, e)


def test_the_whole_care_team_acknowledging_at_once_gets_no_error(routing_stack: Stack) -> None:
    """Every copy of one alert is locked in one order: recipients who acknowledge
    together queue (PostgreSQL would otherwise abort one of them as a deadlock)."""
    clinic = routing_clinic(routing_stack)
    put_rule(clinic, "biopsy:result_received", CARE_RULE)
    critical = external_result(clinic, MELANOMA, biopsy_id="ext-9")
    recipients = ["dr-1", "dr-3", *CARE_TEAM]
    notes = {
        user: wait_until(f"{user}'s alert", lambda u=user: about(clinic, u, critical["id"]))[0]
        for user in recipients
    }
    barrier = threading.Barrier(len(recipients))

    def ack(user: str) -> int:
        http = clinic.stack.http(token_of(clinic, user))
        barrier.wait(timeout=30)
        return http.post(f"/notifications/{notes[user]['id']}/ack").status_code

    with ThreadPoolExecutor(len(recipients)) as pool:
        codes = list(pool.map(ack, recipients))
    assert codes == [200] * len(recipients)
    for user in recipients:
        (n,) = about(clinic, user, critical["id"])
        assert n["acknowledgedAt"] is not None
