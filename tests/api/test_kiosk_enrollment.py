"""Kiosk registration, enrollment codes, device secrets, and disabling a kiosk."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from api.models import Kiosk
from hub.db import utcnow
from tests.support.clinic import Clinic
from tests.support.kiosk import KioskDevice
from tests.support.stack import Stack


def register(clinic: Clinic, kiosk_id: str = "k-lobby") -> dict[str, str]:
    return clinic.post(
        clinic.admin, "/kiosks", {"id": kiosk_id, "name": "Lobby", "locationId": "loc-1"}
    )


def enroll(stack: Stack, code: str, api: object = None) -> tuple[int, dict[str, str]]:
    r = stack.http(api=api).post("/kiosks/enroll", json={"enrollmentCode": code})  # type: ignore[arg-type]
    return r.status_code, r.json()


def test_register_list_and_enroll_once(clinic: Clinic) -> None:
    made = register(clinic)
    assert made["id"] == "k-lobby"
    assert made["locationId"] == "loc-1"
    assert len(made["enrollmentCode"]) == 14  # XXXX-XXXX-XXXX
    expires = made["enrollmentExpiresAt"]
    assert expires is not None
    listed = clinic.stack.http(clinic.admin).get("/kiosks").json()
    assert [(k["id"], k["enrolledAt"], k["disabled"]) for k in listed] == [("k-lobby", None, False)]
    assert "enrollmentCode" not in listed[0]
    # Typed in lower case without the dashes, the code still works: once.
    status, body = enroll(clinic.stack, made["enrollmentCode"].replace("-", "").lower())
    assert status == 201
    assert body["tenant"] == clinic.tenant
    assert body["kioskId"] == "k-lobby"
    assert body["deviceSecret"].startswith("kds_")
    assert len(body["deviceSecret"]) > 40
    status, again = enroll(clinic.stack, made["enrollmentCode"])
    assert status == 401
    assert "deviceSecret" not in again
    listed = clinic.stack.http(clinic.admin).get("/kiosks").json()
    assert listed[0]["enrolledAt"] is not None


def test_only_admins_manage_kiosks_and_ids_are_per_tenant(
    clinic: Clinic, other_clinic: Clinic
) -> None:
    r = clinic.stack.http(clinic.front_desk).post(
        "/kiosks", json={"id": "k-1", "name": "Lobby", "locationId": "loc-1"}
    )
    assert r.status_code == 403
    assert clinic.stack.http(clinic.front_desk).get("/kiosks").status_code == 403
    register(clinic, "k-1")
    assert (
        clinic.stack.http(clinic.admin)
        .post("/kiosks", json={"id": "k-1", "name": "Again", "locationId": "loc-1"})
        .status_code
        == 409
    )
    assert clinic.stack.http(other_clinic.admin).delete("/kiosks/k-1").status_code == 404
    assert clinic.stack.http(other_clinic.admin).get("/kiosks").json() == []
    r = clinic.stack.http(clinic.admin).post(
        "/kiosks", json={"id": "k-2", "name": "Lobby", "locationId": "loc-nowhere"}
    )
    assert r.status_code == 404


def test_an_expired_or_unknown_code_is_refused(clinic: Clinic) -> None:
    made = register(clinic)
    engine = sa.create_engine(clinic.stack.db.url)
    try:
        with Session(engine) as session:
            kiosk = session.get(Kiosk, (clinic.tenant, "k-lobby"))
            assert kiosk is not None
            kiosk.enrollment_expires_at = utcnow() - timedelta(seconds=1)
            session.commit()
    finally:
        engine.dispose()
    assert enroll(clinic.stack, made["enrollmentCode"])[0] == 401
    assert enroll(clinic.stack, "AAAA-BBBB-CCCC")[0] == 401


def test_disabling_a_kiosk_disconnects_it_within_a_second_and_refuses_its_secret(
    clinic: Clinic,
) -> None:
    kiosk = KioskDevice.enroll(clinic)
    creds = kiosk.credentials()
    assert creds["clientId"] == f"{clinic.tenant}.kiosk.{kiosk.id}"
    # The same client id on every call: the device's persistent session survives.
    assert kiosk.credentials()["clientId"] == creds["clientId"]
    probe = kiosk.connect()
    try:
        started = time.monotonic()
        assert clinic.stack.http(clinic.admin).delete(f"/kiosks/{kiosk.id}").status_code == 204
        rc = probe.wait_disconnect(timeout=5)
        assert time.monotonic() - started < 1.5
        assert rc.value == 0x98
    finally:
        probe.close()
    r = clinic.stack.http(kiosk.secret).post("/kiosks/credentials")
    assert r.status_code == 401
    again = clinic.stack.probe(creds, transport="tcp")
    assert again.connect().is_failure
    listed = clinic.stack.http(clinic.admin).get("/kiosks").json()
    assert listed[0]["disabled"] is True


def test_credentials_racing_a_disable_leave_nothing_usable(clinic: Clinic) -> None:
    kiosk = KioskDevice.enroll(clinic)
    kiosk.credentials()  # a live session: the racing calls renew it
    http = clinic.stack.http(kiosk.secret)
    with ThreadPoolExecutor(8) as pool:
        calls = [pool.submit(http.post, "/kiosks/credentials") for _ in range(6)]
        time.sleep(0.01)
        disabled = pool.submit(clinic.stack.http(clinic.admin).delete, f"/kiosks/{kiosk.id}")
        calls += [pool.submit(http.post, "/kiosks/credentials") for _ in range(6)]
        assert disabled.result().status_code == 204
        answers = [c.result() for c in calls]
    assert {r.status_code for r in answers} <= {200, 401}
    # Whatever was issued around the disable does not get in.
    for r in answers:
        if r.status_code == 200:
            probe = clinic.stack.probe(r.json(), transport="tcp")
            try:
                assert probe.connect().is_failure
            finally:
                probe.close()
    # After the disable: 401, and nothing issued.
    assert http.post("/kiosks/credentials").status_code == 401


def test_a_wrong_device_secret_is_refused(clinic: Clinic) -> None:
    KioskDevice.enroll(clinic)
    for secret in ("kds_" + "A" * 43, "not-a-secret", clinic.front_desk):
        assert clinic.stack.http(secret).post("/kiosks/credentials").status_code == 401
    assert clinic.stack.http().post("/kiosks/credentials").status_code == 401


def test_wrong_codes_have_a_global_budget_and_a_valid_code_always_enrolls(
    stack: Stack, clinic: Clinic
) -> None:
    api = stack.add_api(HUB_KIOSK_AUTH_MAX_FAILURES="3")
    try:
        made = register(clinic)
        for i in range(3):
            assert enroll(stack, f"AAAA-BBBB-CCC{i + 2}", api)[0] == 401
        # Over the budget, wrong codes are refused with 429, whoever sends them...
        assert enroll(stack, "AAAA-BBBB-CCC9", api)[0] == 429
        # ...but the right code is checked first and enrolls all the same.
        status, body = enroll(stack, made["enrollmentCode"], api)
        assert status == 201, body
        assert body["deviceSecret"].startswith("kds_")
        # Device secrets (256 bits) have no limit: wrong ones are 401, right ones work.
        for _ in range(5):
            assert stack.http("kds_guess", api=api).post("/kiosks/credentials").status_code == 401
        r = stack.http(body["deviceSecret"], api=api).post("/kiosks/credentials")
        assert r.status_code == 200, r.text
    finally:
        api.stop()
