"""Rate limits (api/rate_limits.py), against the real stack: a stack of its own with
small bursts that barely refill (one token in 100 minutes), so what a test spends
stays spent and nothing depends on the clock; and the session's stack with the
defaults, which a clinic's busy minute must not trouble."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import BACKENDS, _require_backend
from tests.support.clinic import Clinic, new_tenant
from tests.support.kiosk import KioskDevice
from tests.support.stack import Stack

SLOW = "0.01"  # tokens a minute: nothing comes back while a test runs
LIMITS = {
    "HUB_RATE_LIMIT_CREDENTIALS_BURST": "3",
    "HUB_RATE_LIMIT_CREDENTIALS_PER_MINUTE": SLOW,
    "HUB_RATE_LIMIT_CREDENTIALS_TENANT_BURST": "8",
    "HUB_RATE_LIMIT_CREDENTIALS_TENANT_PER_MINUTE": SLOW,
    "HUB_RATE_LIMIT_REPLAY_BURST": "3",
    "HUB_RATE_LIMIT_REPLAY_PER_MINUTE": SLOW,
    "HUB_RATE_LIMIT_REPLAY_TENANT_BURST": "10",
    "HUB_RATE_LIMIT_REPLAY_TENANT_PER_MINUTE": SLOW,
    "HUB_RATE_LIMIT_WRITES_BURST": "12",
    "HUB_RATE_LIMIT_WRITES_PER_MINUTE": SLOW,
    "HUB_RATE_LIMIT_WRITES_TENANT_BURST": "40",
    "HUB_RATE_LIMIT_WRITES_TENANT_PER_MINUTE": SLOW,
}


@pytest.fixture(scope="module", params=BACKENDS)
def limited(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    _require_backend(request.param)
    tmp: Path = tmp_path_factory.mktemp(f"limited-{request.param}")
    s = Stack.create(request.param, tmp, **LIMITS)
    yield s
    s.close()


def assert_limited(r: httpx.Response, what: str) -> dict[str, Any]:
    assert r.status_code == 429, r.text
    assert r.headers["Retry-After"].isdigit(), r.headers
    assert int(r.headers["Retry-After"]) >= 1
    body: dict[str, Any] = r.json()
    assert body["error"] == "rate_limited"
    assert body["message"].startswith(f"too many {what}"), body
    assert set(body) == {"error", "message"}
    return body


def issued(clinic: Clinic) -> list[dict[str, Any]]:
    r = clinic.stack.http(clinic.admin).get("/audit", params={"kind": "session", "limit": 1000})
    assert r.status_code == 200, r.text
    return [e for e in r.json()["entries"] if e["kind"] in ("session.issued", "session.renewed")]


def event(patient_id: str, n: int) -> dict[str, Any]:
    return {
        "type": "patient:insurance_verified",
        "patientId": patient_id,
        "entityId": patient_id,
        "data": {
            "patientId": patient_id,
            "payerId": "payer-1",
            "memberId": f"m-{n}",
            "verifiedAt": "2026-12-02T10:00:00Z",
        },
    }


def batch(patient_id: str, size: int) -> dict[str, Any]:
    return {"events": [event(patient_id, n) for n in range(size)]}


def test_one_user_in_a_credentials_loop_is_refused_others_are_served(limited: Stack) -> None:
    clinic, other = Clinic.create(limited), Clinic.create(limited)
    looping = limited.http(limited.token(clinic.tenant, "u-loop", "front_desk"))
    answers = [looping.post("/realtime/credentials") for _ in range(10)]
    assert [r.status_code for r in answers[:3]] == [200, 200, 200]
    for r in answers[3:]:
        assert_limited(r, "credential requests")
    # A renewal is a credential request too.
    renewal = looping.post(
        "/realtime/credentials", json={"clientId": answers[0].json()["clientId"]}
    )
    assert_limited(renewal, "credential requests")

    # A colleague of the same tenant, and a user of another tenant, are still served.
    limited.credentials(limited.token(clinic.tenant, "u-colleague", "front_desk"))
    limited.credentials(limited.token(other.tenant, "u-loop", "front_desk"))

    # The refused calls issued nothing: three sessions of the looping user, one other.
    rows = issued(clinic)
    assert sorted(e["actor"] for e in rows) == ["u-colleague", "u-loop", "u-loop", "u-loop"]
    assert {e["kind"] for e in rows} == {"session.issued"}


def test_the_tenant_bucket_stops_many_users_together_not_other_tenants(limited: Stack) -> None:
    tenant = new_tenant()
    codes = []
    for n in range(12):  # each user once: no user is over its own limit
        token = limited.token(tenant, f"u-{n}", "front_desk")
        codes.append(limited.http(token).post("/realtime/credentials").status_code)
    assert codes == [200] * 8 + [429] * 4
    r = limited.http(limited.token(tenant, "u-new", "front_desk")).post("/realtime/credentials")
    assert_limited(r, "credential requests")
    # Another tenant has its own bucket.
    limited.credentials(limited.token(new_tenant(), "u-0", "front_desk"))


def test_partner_and_kiosk_credentials_are_limited_per_partner_and_kiosk(limited: Stack) -> None:
    clinic = Clinic.create(limited)
    admin = limited.http(clinic.admin)
    made = admin.post("/partners", json={"id": "lab-1", "name": "Lab", "eventTypes": ["claim:*"]})
    assert made.status_code == 201, made.text
    partner = limited.http(made.json()["secret"])
    answers = [partner.post("/partners/credentials") for _ in range(4)]
    assert [r.status_code for r in answers[:3]] == [200] * 3
    assert_limited(answers[3], "credential requests")
    # A refused request changes nothing, not even when the partner was last seen.
    seen = admin.get("/partners").json()[0]["lastSeenAt"]
    assert seen is not None
    assert_limited(partner.post("/partners/credentials"), "credential requests")
    assert admin.get("/partners").json()[0]["lastSeenAt"] == seen

    kiosk = KioskDevice.enroll(clinic)
    device = limited.http(kiosk.secret)
    answers = [device.post("/kiosks/credentials") for _ in range(4)]
    assert [r.status_code for r in answers[:3]] == [200] * 3
    assert_limited(answers[3], "credential requests")

    rows = issued(clinic)
    assert sorted(e["actor"] for e in rows) == sorted(["lab-1"] * 3 + [kiosk.id] * 3)


def test_replay_is_limited_per_user_and_refusals_are_not_audited(limited: Stack) -> None:
    clinic = Clinic.create(limited)
    reader = limited.http(clinic.front_desk)
    answers = [reader.get("/events", params={"after": 0}) for _ in range(5)]
    assert [r.status_code for r in answers[:3]] == [200] * 3
    for r in answers[3:]:
        assert_limited(r, "replay requests")
    assert (
        limited.http(limited.token(clinic.tenant, "pr-1", "provider")).get("/events").status_code
        == 200
    )

    r = limited.http(clinic.admin).get("/audit", params={"kind": "events.replayed"})
    assert sorted(e["actor"] for e in r.json()["entries"]) == ["fd-1"] * 3 + ["pr-1"]


def test_writes_count_a_batch_by_its_events_and_refused_ones_write_nothing(
    limited: Stack,
) -> None:
    clinic = Clinic.create(limited)
    service = limited.http(limited.token(clinic.tenant, "svc-1", "service"))
    pid = clinic.patient_id
    assert service.post("/events/batch", json=batch(pid, 8)).status_code == 202  # 4 left
    assert_limited(service.post("/events/batch", json=batch(pid, 5)), "writes")
    assert service.post("/events", json=event(pid, 100)).status_code == 202  # 3 left
    assert service.post("/events/batch", json=batch(pid, 3)).status_code == 202  # 0 left
    assert_limited(service.post("/events", json=event(pid, 101)), "writes")

    r = limited.http(limited.token(clinic.tenant, "reader", "front_desk")).get(
        "/events", params={"after": 0, "limit": 1000}
    )
    assert r.status_code == 200, r.text
    assert len([e for e in r.json()["events"] if e["actor"] == "svc-1"]) == 12


def test_the_fast_path_and_the_routes_answer_the_same_429(limited: Stack) -> None:
    clinic = Clinic.create(limited)
    token = limited.token(clinic.tenant, "ad-2", "admin")
    admin = limited.http(token)
    patient = {"firstName": "Grace", "lastName": "Hopper", "dateOfBirth": "1906-12-09"}
    for _ in range(12):
        assert admin.post("/patients", json=patient).status_code == 201
    domain = admin.post("/patients", json=patient)
    fast = admin.post("/events", json=event(clinic.patient_id, 1))
    # A media type the fast path passes on, which FastAPI still reads as JSON.
    routed = admin.post(
        "/events",
        content=httpx.Request("POST", "/", json=event(clinic.patient_id, 2)).content,
        headers={"content-type": "application/x-test+json"},
    )
    bodies = [assert_limited(r, "writes") for r in (domain, fast, routed)]
    digits = re.compile(r"\d+")
    assert len({(b["error"], digits.sub("N", b["message"])) for b in bodies}) == 1
    assert {r.headers["content-type"] for r in (domain, fast, routed)} == {"application/json"}

    # Nothing was written by the refused requests; a GET is not a write.
    r = admin.get("/patients", params={"q": "Hopper"})
    assert r.status_code == 200, r.text
    assert len(r.json()) == 12
    assert limited.http(clinic.front_desk).post("/patients", json=patient).status_code == 201


def test_the_defaults_let_a_busy_clinic_through(stack: Stack) -> None:
    """A shift change (200 staff of one tenant sign in at once), a lab service posting
    50 batches of 100 results, and a browser replaying after 100 reconnects."""
    clinic = Clinic.create(stack)

    def sign_in(n: int) -> int:
        token = stack.token(clinic.tenant, f"staff-{n}", "front_desk")
        return stack.http(token).post("/realtime/credentials").status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = list(pool.map(sign_in, range(200)))
    assert codes == [200] * 200

    lab = stack.http(stack.token(clinic.tenant, f"lab-{uuid.uuid4().hex[:6]}", "service"))
    codes = [
        lab.post("/events/batch", json=batch(clinic.patient_id, 100)).status_code for _ in range(50)
    ]
    assert codes == [202] * 50

    browser = stack.http(clinic.front_desk)
    codes = [browser.get("/events", params={"after": 4900}).status_code for _ in range(100)]
    assert codes == [200] * 100
