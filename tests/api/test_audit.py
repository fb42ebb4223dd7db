"""The audit trail (contract, section 12), against the real stack: each audited change
leaves one row with the right actor, subject and details, committed with the change
(a refused change leaves none); GET /audit is per tenant, admin only, paged and
filtered; a check-in attempt's row holds neither the typed name nor the birth date."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from api.settings import Settings
from hub.audit import AuditRecord, prune_audit, record_audit
from tests.support.clinic import Clinic
from tests.support.kiosk import KioskDevice, check_in_body
from tests.support.stack import Stack

NOW = lambda: datetime.now(UTC).replace(microsecond=0)  # noqa: E731


def audit(clinic: Clinic, token: str | None = None, **params: Any) -> dict[str, Any]:
    r = clinic.stack.http(token or clinic.admin).get("/audit", params=params)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def entries(clinic: Clinic, **params: Any) -> list[dict[str, Any]]:
    return audit(clinic, limit=1000, **params)["entries"]  # type: ignore[no-any-return]


def same_instant(a: str, b: str) -> bool:
    return datetime.fromisoformat(a) == datetime.fromisoformat(b)


def test_sessions_issued_renewed_and_revoked_are_audited(clinic: Clinic) -> None:
    stack = clinic.stack
    creds = stack.credentials(clinic.front_desk)
    renewed = stack.credentials(clinic.front_desk, clientId=creds["clientId"])
    assert (
        stack.http(clinic.admin).delete(f"/realtime/credentials/{creds['clientId']}").status_code
        == 204
    )
    own = stack.credentials(clinic.front_desk)
    r = stack.http(clinic.front_desk).delete(f"/realtime/credentials/{own['clientId']}")
    assert r.status_code == 204

    rows = entries(clinic, kind="session")
    assert [(e["kind"], e["actor"], e["actorKind"], e["subject"]) for e in rows] == [
        ("session.issued", "fd-1", "user", creds["clientId"]),
        ("session.renewed", "fd-1", "user", creds["clientId"]),
        ("session.revoked", "ad-1", "user", creds["clientId"]),
        ("session.issued", "fd-1", "user", own["clientId"]),
        ("session.revoked", "fd-1", "user", own["clientId"]),
    ]
    assert {e["details"]["credentialKind"] for e in rows} == {"session"}
    assert same_instant(rows[0]["details"]["expiresAt"], creds["expiresAt"])
    assert same_instant(rows[1]["details"]["expiresAt"], renewed["expiresAt"])
    # The revocation lasts as long as the longest token of the client id.
    assert same_instant(rows[2]["details"]["expiresAt"], renewed["expiresAt"])
    for e in rows:
        assert set(e) == {"id", "at", "actor", "actorKind", "kind", "subject", "details"}
        assert creds["password"] not in str(e)
        assert renewed["password"] not in str(e)


def test_kiosk_registration_enrollment_credentials_and_disable_are_audited(
    clinic: Clinic,
) -> None:
    kiosk = KioskDevice.enroll(clinic)
    first = kiosk.credentials()
    kiosk.credentials()  # a renewal of the same client id
    assert clinic.stack.http(clinic.admin).delete(f"/kiosks/{kiosk.id}").status_code == 204

    rows = entries(clinic, kind="kiosk,session")
    assert [(e["kind"], e["actor"], e["actorKind"], e["subject"]) for e in rows] == [
        ("kiosk.registered", "ad-1", "user", kiosk.id),
        ("kiosk.enrolled", kiosk.id, "kiosk", kiosk.id),
        ("session.issued", kiosk.id, "kiosk", first["clientId"]),
        ("session.renewed", kiosk.id, "kiosk", first["clientId"]),
        ("kiosk.disabled", "ad-1", "user", kiosk.id),
        ("session.revoked", "ad-1", "user", first["clientId"]),
    ]
    assert rows[0]["details"] == {"locationId": clinic.location_id}
    assert rows[2]["details"]["credentialKind"] == "kiosk"
    assert rows[5]["details"]["credentialKind"] == "kiosk"
    # Disabling again changes nothing and records nothing; refused changes record nothing.
    http = clinic.stack.http(clinic.admin)
    assert http.delete(f"/kiosks/{kiosk.id}").status_code == 204
    assert http.delete("/kiosks/k-nowhere").status_code == 404
    again = {"id": kiosk.id, "name": "Again", "locationId": clinic.location_id}
    assert http.post("/kiosks", json=again).status_code == 409
    assert clinic.stack.http(kiosk.secret).post("/kiosks/credentials").status_code == 401
    assert http.delete(f"/realtime/credentials/{first['clientId']}").status_code == 404
    assert len(entries(clinic)) == len(rows)


def test_check_in_attempts_are_audited_without_what_the_patient_typed(clinic: Clinic) -> None:
    stack = clinic.stack
    # Names and dates that occur nowhere else, so that a search for them means something.
    patient = clinic.post(
        clinic.front_desk,
        "/patients",
        {"firstName": "Ottoline", "lastName": "Quarrendon", "dateOfBirth": "1961-07-23"},
    )
    appt = clinic.book(start=NOW() + timedelta(minutes=10), patient_id=patient["id"])
    kiosk = KioskDevice.enroll(clinic)
    probe = kiosk.connect()
    try:
        wrong = check_in_body("Wexcombe", "1950-03-04")
        assert kiosk.ask(probe, wrong) == {"ok": False, "reason": "no_match"}
        bad = {"type": "check_in", "lastName": "Invalidhurst", "dateOfBirth": "1944-02-30"}
        assert kiosk.ask(probe, bad) == {"ok": False, "reason": "invalid"}
        right = kiosk.send(probe, check_in_body("QUARRENDON", "1961-07-23"))
        assert kiosk.answer(probe, right)["ok"] is True
        # The same correlation data again is the same attempt: answered, not recorded twice.
        again = kiosk.send(probe, check_in_body("QUARRENDON", "1961-07-23"), correlation=right)
        assert kiosk.answer(probe, again)["ok"] is True
    finally:
        probe.close()

    rows = entries(clinic, kind="kiosk.checkin")
    assert [(e["actor"], e["actorKind"], e["subject"]) for e in rows] == [
        (kiosk.id, "kiosk", kiosk.id)
    ] * 3
    assert [e["details"] for e in rows] == [
        {"outcome": "no_match"},
        {"outcome": "invalid"},
        {"outcome": "ok", "appointmentId": appt["id"]},
    ]

    typed = ("Wexcombe", "1950-03-04", "Invalidhurst", "1944-02-30", "Quarrendon", "1961-07-23")
    engine = sa.create_engine(stack.db.url)
    try:
        with engine.connect() as conn:
            table = [
                " ".join(str(v) for v in row)
                for row in conn.execute(sa.select(AuditRecord.__table__))
            ]
    finally:
        engine.dispose()
    logs = [p.read_text(errors="replace") for p in stack.tmp.glob("api*.log")]
    for text in typed:
        assert not any(text.lower() in row.lower() for row in table), text
        assert not any(text.lower() in log.lower() for log in logs), text


def test_a_lockout_is_audited(clinic: Clinic) -> None:
    kiosk = KioskDevice.enroll(clinic)
    probe = kiosk.connect()
    try:
        for i in range(5):
            assert (
                kiosk.ask(probe, check_in_body(f"Guess{i}", "1970-01-01"))["reason"] == "no_match"
            )
        assert kiosk.ask(probe)["reason"] == "rate_limited"
    finally:
        probe.close()
    (locked,) = entries(clinic, kind="kiosk.locked")
    assert (locked["actor"], locked["actorKind"], locked["subject"]) == ("hub", "hub", kiosk.id)
    assert locked["details"]["failures"] == 5
    outcomes = [e["details"]["outcome"] for e in entries(clinic, kind="kiosk.checkin")]
    assert outcomes == ["no_match"] * 5 + ["rate_limited"]
    # The lock-out row commits with the fifth failure: it comes right after it.
    ids = {e["id"]: e for e in entries(clinic, kind="kiosk")}
    assert ids[locked["id"] - 1]["details"]["outcome"] == "no_match"


def test_replays_are_audited_with_the_caller_types_and_seq_range(clinic: Clinic) -> None:
    first = clinic.book()
    second = clinic.book(start=NOW() + timedelta(hours=1))
    http = clinic.stack.http(clinic.front_desk)
    r = http.get("/events", params={"after": 0, "types": "appointment:created"})
    assert r.status_code == 200, r.text
    events = r.json()["events"]
    assert [e["entityId"] for e in events] == [first["id"], second["id"]]
    r = http.get("/events", params={"after": events[-1]["seq"], "patientId": clinic.patient_id})
    assert r.status_code == 200, r.text
    assert r.json()["events"] == []
    # Unknown types are refused: no page, no row.
    assert http.get("/events", params={"types": "nope:nope"}).status_code == 422

    rows = entries(clinic, kind="events")
    assert [(e["kind"], e["actor"], e["actorKind"], e["subject"]) for e in rows] == [
        ("events.replayed", "fd-1", "user", None)
    ] * 2
    assert rows[0]["details"] == {
        "after": 0,
        "types": ["appointment:created"],
        "patientFiltered": False,
        "count": 2,
        "firstSeq": events[0]["seq"],
        "lastSeq": events[1]["seq"],
    }
    assert rows[1]["details"] == {
        "after": events[-1]["seq"],
        "types": None,
        "patientFiltered": True,
        "count": 0,
        "firstSeq": None,
        "lastSeq": None,
    }


def test_acknowledgements_are_audited_by_id_and_kind_only(clinic: Clinic) -> None:
    bx = clinic.biopsy()
    diagnosis = "Malignant melanoma in situ, margins involved"
    clinic.post(clinic.lab, f"/biopsies/{bx['id']}/result", {"diagnosis": diagnosis})
    http = clinic.stack.http(clinic.provider)
    note = http.get("/notifications").json()["notifications"][0]
    before = audit(clinic)["nextAfter"]
    # A refused change records nothing.
    assert http.post("/notifications/n-unknown/ack").status_code == 404
    assert (
        clinic.stack.http(clinic.front_desk).post(f"/notifications/{note['id']}/ack").status_code
        == 404
    )
    assert audit(clinic, after=before)["entries"] == []

    assert http.post(f"/notifications/{note['id']}/ack").status_code == 200
    assert http.post(f"/notifications/{note['id']}/ack").status_code == 200  # no change
    (row,) = audit(clinic, after=before)["entries"]
    assert (row["kind"], row["actor"], row["actorKind"], row["subject"]) == (
        "notification.acknowledged",
        "dr-1",
        "user",
        note["id"],
    )
    assert row["details"] == {"kind": note["kind"]}
    assert "melanoma" not in str(row).lower()
    assert "Lovelace" not in str(row)


def test_only_a_tenants_admins_read_its_own_audit(clinic: Clinic, other_clinic: Clinic) -> None:
    mine = clinic.stack.credentials(clinic.front_desk)["clientId"]
    theirs = other_clinic.stack.credentials(other_clinic.front_desk)["clientId"]
    assert [e["subject"] for e in entries(clinic)] == [mine]
    assert [e["subject"] for e in entries(other_clinic)] == [theirs]
    # Filters never reach across tenants either.
    assert entries(other_clinic, actor="fd-1", kind="session") == entries(other_clinic)
    for token in (clinic.front_desk, clinic.provider, clinic.billing, clinic.lab):
        r = clinic.stack.http(token).get("/audit")
        assert r.status_code == 403, r.text
    assert clinic.stack.http().get("/audit").status_code == 401


def test_paging_and_filters(clinic: Clinic) -> None:
    stack = clinic.stack
    issued = [stack.credentials(clinic.front_desk)["clientId"] for _ in range(3)]
    provider = stack.credentials(clinic.provider)["clientId"]
    KioskDevice.enroll(clinic)

    everything = entries(clinic)
    ids = [e["id"] for e in everything]
    assert ids == sorted(ids)
    pages, after = [], 0
    while True:
        page = audit(clinic, after=after, limit=2)
        if not page["entries"]:
            assert page["nextAfter"] == after
            break
        assert len(page["entries"]) <= 2
        pages += page["entries"]
        after = page["nextAfter"]
        assert after == page["entries"][-1]["id"]
    assert pages == everything

    assert [e["subject"] for e in entries(clinic, actor="fd-1", kind="session.issued")] == issued
    assert [e["subject"] for e in entries(clinic, actor="dr-1")] == [provider]
    assert [e["kind"] for e in entries(clinic, kind="kiosk")] == [
        "kiosk.registered",
        "kiosk.enrolled",
    ]
    both = entries(clinic, kind="kiosk.enrolled, session.issued")
    assert [e["kind"] for e in both] == ["session.issued"] * 4 + ["kiosk.enrolled"]
    assert entries(clinic, actor="nobody") == []
    assert entries(clinic, kind="partner") == []

    http = stack.http(clinic.admin)
    for params in (
        {"limit": 0},
        {"limit": 1001},
        {"after": -1},
        {"after": "x"},
        {"kind": ""},
        {"kind": "Session.Issued"},
        {"kind": "session.issued.x"},
        {"kind": "sess%"},
        {"kind": ",".join(["session"] * 21)},
        {"actor": ""},
        {"actor": "a" * 65},
    ):
        r = http.get("/audit", params=params)
        assert r.status_code == 422, (params, r.text)
        assert r.json()["message"], params
    assert len(audit(clinic, limit=1000)["entries"]) == len(everything)


def test_retention_prunes_only_rows_older_than_the_setting(stack: Stack) -> None:
    assert Settings().audit_retention_days == 2190
    tenant = f"t-prune-{NOW().timestamp():.0f}"
    engine = sa.create_engine(stack.db.url)
    try:
        with Session(engine) as session:
            for age in (2191, 2189):
                record_audit(
                    session,
                    tenant=tenant,
                    actor="hub",
                    actor_kind="hub",
                    kind="test.aged",
                    subject=str(age),
                    at=NOW() - timedelta(days=age),
                )
            session.commit()
            assert prune_audit(session, timedelta(days=2190)) >= 1
            session.commit()
            left = session.scalars(
                sa.select(AuditRecord.subject).where(AuditRecord.tenant == tenant)
            ).all()
        assert left == ["2189"]
    finally:
        engine.dispose()


def test_a_session_pushed_out_by_the_session_limit_is_audited(clinic: Clinic) -> None:
    issued = [clinic.stack.credentials(clinic.provider)["clientId"] for _ in range(9)]
    (revoked,) = entries(clinic, kind="session.revoked")
    # The oldest of the user's live sessions, revoked by the user's ninth.
    assert (revoked["actor"], revoked["actorKind"], revoked["subject"]) == (
        "dr-1",
        "user",
        issued[0],
    )
    assert revoked["details"]["reason"] == "session_limit"
    kinds = [e["kind"] for e in entries(clinic, kind="session")]
    assert kinds == ["session.issued"] * 9 + ["session.revoked"]
