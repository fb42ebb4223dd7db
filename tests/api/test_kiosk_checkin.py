"""Kiosk check-in over MQTT 5 request/response, against the real broker and database:
matching, every refusal reason, repeated correlation data, bad input, the lock-out."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from api.domain.kiosks import prune_answers
from api.models import KioskAnswer
from tests.support.clinic import Clinic
from tests.support.kiosk import KioskDevice, check_in_body, nothing_for, request_properties

NOW = lambda: datetime.now(UTC).replace(microsecond=0)  # noqa: E731


def status_of(clinic: Clinic, appt_id: str) -> str:
    r = clinic.stack.http(clinic.front_desk).get(f"/appointments/{appt_id}")
    assert r.status_code == 200, r.text
    return str(r.json()["status"])


def checkins(clinic: Clinic) -> list[dict[str, Any]]:
    r = clinic.stack.http(clinic.front_desk).get(
        "/events", params={"after": 0, "types": "appointment:checkedin"}
    )
    assert r.status_code == 200, r.text
    return r.json()["events"]  # type: ignore[no-any-return]


def patient(clinic: Clinic, first: str, last: str, dob: str) -> str:
    return str(
        clinic.post(
            clinic.front_desk,
            "/patients",
            {"firstName": first, "lastName": last, "dateOfBirth": dob},
        )["id"]
    )


def test_check_in_by_name_and_birth_date_commits_the_event_with_the_kiosk_as_actor(
    clinic: Clinic,
) -> None:
    appt = clinic.book(start=NOW() + timedelta(minutes=20))
    kiosk = KioskDevice.enroll(clinic, name="North lobby")
    desk = clinic.stack.connected_probe(clinic.front_desk)
    assert desk.subscribe(f"tenants/{clinic.tenant}/patients/+/appointment/#").value == 1
    probe = kiosk.connect()
    try:
        # Case and accents do not matter.
        answer = kiosk.ask(probe, check_in_body("LOVÉLACE", "1985-12-10"))
        assert answer["ok"] is True
        shown = answer["appointment"]
        assert set(shown) == {"scheduledStart", "providerName", "patientDisplayName"}
        assert datetime.fromisoformat(shown["scheduledStart"]) == datetime.fromisoformat(
            appt["scheduledStart"]
        )
        assert shown["providerName"] == "Dr. One"
        assert shown["patientDisplayName"] == "Ada L."  # first name and last initial only
        event = desk.wait_event("appointment:checkedin", appt["id"]).json()
        assert event["actor"] == kiosk.id
        assert event["data"]["kioskName"] == "North lobby"
        assert status_of(clinic, appt["id"]) == "checked_in"
        # The kiosk's last contact is kept.
        listed = clinic.stack.http(clinic.admin).get("/kiosks").json()
        assert listed[0]["lastSeenAt"] is not None
        assert listed[0]["enrolledAt"] is not None
    finally:
        probe.close()
        desk.close()


def test_repeated_correlation_data_gets_the_same_answer_and_checks_in_once(
    clinic: Clinic,
) -> None:
    clinic.book(start=NOW() + timedelta(minutes=5))
    kiosk = KioskDevice.enroll(clinic)
    probe = kiosk.connect()
    try:
        corr = kiosk.send(probe)
        first = kiosk.answer(probe, corr)
        assert first["ok"] is True
        for _ in range(3):
            assert kiosk.answer(probe, kiosk.send(probe, correlation=corr)) == first
        # A new request for the same patient: already checked in.
        assert kiosk.ask(probe) == {"ok": False, "reason": "already_checked_in"}
        assert len(checkins(clinic)) == 1
    finally:
        probe.close()
    # The rows keep the outcome and the appointment id, nothing the answer showed; the
    # repeat above was rebuilt from the appointment. Rows older than a day are pruned.
    engine = sa.create_engine(clinic.stack.db.url)
    try:
        with Session(engine) as session:
            rows = session.scalars(
                sa.select(KioskAnswer).where(KioskAnswer.kiosk_id == kiosk.id)
            ).all()
            assert sorted(r.outcome for r in rows) == ["already_checked_in", "ok"]
            columns = set(sa.inspect(KioskAnswer).columns.keys())
            assert columns == {
                "tenant",
                "kiosk_id",
                "correlation_hash",
                "outcome",
                "appointment_id",
                "created_at",
            }
            ok = next(r for r in rows if r.outcome == "ok")
            ok.created_at -= timedelta(days=1, minutes=1)
            session.commit()
            assert prune_answers(session) >= 1
            session.commit()
            left = session.scalars(
                sa.select(KioskAnswer.outcome).where(KioskAnswer.kiosk_id == kiosk.id)
            ).all()
            assert left == ["already_checked_in"]
    finally:
        engine.dispose()


def test_every_refusal_reason(clinic: Clinic) -> None:
    now = NOW()
    kiosk = KioskDevice.enroll(clinic)
    # Twins: same last name and birth date, both booked today.
    twin_a = patient(clinic, "Castor", "Dioskouri", "1990-01-01")
    twin_b = patient(clinic, "Pollux", "Dioskouri", "1990-01-01")
    clinic.book(start=now + timedelta(minutes=10), patient_id=twin_a)
    clinic.book(start=now + timedelta(minutes=10), patient_id=twin_b)
    # Too early: three hours ahead (the window opens 60 minutes before).
    early = patient(clinic, "Grace", "Hopper", "1906-12-09")
    clinic.book(start=now + timedelta(hours=3), patient_id=early)
    # Another location's appointment does not match this kiosk.
    probe = kiosk.connect()
    try:
        assert kiosk.ask(probe, check_in_body("Nobody", "2000-01-01"))["reason"] == "no_match"
        assert kiosk.ask(probe, check_in_body("Dioskouri", "1990-01-01"))["reason"] == "ambiguous"
        assert kiosk.ask(probe, check_in_body("Hopper", "1906-12-09"))["reason"] == "outside_window"
        # The right name with the wrong birth date is no match either.
        assert kiosk.ask(probe, check_in_body("Hopper", "1906-12-10"))["reason"] == "no_match"
        assert checkins(clinic) == []
    finally:
        probe.close()


def test_five_failures_lock_the_kiosk_and_notify_the_front_desk(clinic: Clinic) -> None:
    r = clinic.stack.http(clinic.admin).post(
        "/staff", json={"id": "fd-1", "name": "Front Desk", "roles": ["front_desk"]}
    )
    assert r.status_code == 201, r.text
    clinic.book(start=NOW() + timedelta(minutes=5))
    kiosk = KioskDevice.enroll(clinic, name="Lobby B")
    desk = clinic.stack.connected_probe(clinic.front_desk)
    assert desk.subscribe(f"tenants/{clinic.tenant}/users/fd-1/notifications/+").value == 1
    early = patient(clinic, "Grace", "Hopper", "1906-12-09")
    clinic.book(start=NOW() + timedelta(hours=3), patient_id=early)
    probe = kiosk.connect()
    try:
        # Answers that found the patient are not guesses: they never lock the kiosk.
        for _ in range(6):
            assert kiosk.ask(probe, check_in_body("Hopper", "1906-12-09"))["reason"] == (
                "outside_window"
            )
        for i in range(5):
            assert (
                kiosk.ask(probe, check_in_body(f"Guess{i}", "1970-01-01"))["reason"] == "no_match"
            )
        # Locked: even the right patient is told to see the front desk.
        assert kiosk.ask(probe) == {"ok": False, "reason": "rate_limited"}
        note = desk.wait_for(lambda m: "/notifications/" in m.topic).json()
        assert note["kind"] == "kiosk_locked"
        assert note["entityId"] == kiosk.id
        assert "Lobby B" in note["title"]
        listed = clinic.stack.http(clinic.front_desk).get("/notifications").json()
        assert any(n["kind"] == "kiosk_locked" for n in listed["notifications"])
        assert checkins(clinic) == []
    finally:
        probe.close()
        desk.close()


BAD_INPUT = [
    b"{not json",
    b"\xff\xfe",
    json.dumps([1, 2]).encode(),
    json.dumps({"type": "check_out", "lastName": "Lovelace", "dateOfBirth": "1985-12-10"}),
    json.dumps({"type": "check_in", "dateOfBirth": "1985-12-10"}),
    json.dumps({"type": "check_in", "lastName": "Lovelace"}),
    json.dumps({"type": "check_in", "lastName": "", "dateOfBirth": "1985-12-10"}),
    json.dumps({"type": "check_in", "lastName": "L" * 101, "dateOfBirth": "1985-12-10"}),
    json.dumps({"type": "check_in", "lastName": 42, "dateOfBirth": "1985-12-10"}),
    json.dumps({"type": "check_in", "lastName": "Lovelace", "dateOfBirth": "1985-02-30"}),
    json.dumps({"type": "check_in", "lastName": "Lovelace", "dateOfBirth": "10.12.1985"}),
    json.dumps({"type": "check_in", "lastName": "Lovelace", "dateOfBirth": "1985-12-10", "x": 1}),
]


def test_bad_input_is_answered_invalid_and_writes_nothing(clinic: Clinic) -> None:
    appt = clinic.book(start=NOW() + timedelta(minutes=5))
    kiosk = KioskDevice.enroll(clinic)
    probe = kiosk.connect()
    try:
        used = []
        for body in BAD_INPUT:
            corr = kiosk.send(probe, body)
            assert kiosk.answer(probe, corr) == {"ok": False, "reason": "invalid"}, body
            used.append(corr)
        assert status_of(clinic, appt["id"]) == "scheduled"
        # Nothing was recorded: not as failures (no lock-out after 13), and not as
        # answers (a valid request reusing a correlation id is answered afresh).
        assert kiosk.answer(probe, kiosk.send(probe, correlation=used[0]))["ok"] is True
        assert len(checkins(clinic)) == 1
    finally:
        probe.close()


@pytest.mark.parametrize(
    ("response_topic", "correlation", "expiry"),
    [
        (None, b"c1", 30),
        ("own", None, 30),
        ("own", b"x" * 200, 30),
        ("own", b"c2", None),
        ("own", b"c3", 120),
    ],
    ids=["no-response-topic", "no-correlation", "long-correlation", "no-expiry", "expiry-over-60s"],
)
def test_requests_without_proper_addressing_get_no_answer(
    clinic: Clinic, response_topic: str | None, correlation: bytes | None, expiry: int | None
) -> None:
    appt = clinic.book(start=NOW() + timedelta(minutes=5))
    kiosk = KioskDevice.enroll(clinic)
    probe = kiosk.connect()
    try:
        rc = probe.publish(
            kiosk.requests,
            json.dumps(check_in_body()),
            properties=request_properties(
                kiosk.responses if response_topic == "own" else response_topic, correlation, expiry
            ),
        )
        assert not rc.is_failure
        assert nothing_for(probe, 1.5) == []
        assert status_of(clinic, appt["id"]) == "scheduled"
    finally:
        probe.close()


def test_concurrent_check_ins_of_one_appointment_check_in_once(clinic: Clinic) -> None:
    """Two kiosks and the front desk check the same patient in at once: one wins, the
    others see the new state (already_checked_in, or 409), and no status is overwritten."""
    first, second = KioskDevice.enroll(clinic), KioskDevice.enroll(clinic)
    probes = [first.connect(), second.connect()]
    desk = clinic.stack.http(clinic.front_desk)
    try:
        for round_ in range(4):
            last = f"Racer{chr(ord('a') + round_)}"
            pid = patient(clinic, "Rita", last, "1970-05-05")
            appt = clinic.book(start=NOW() + timedelta(minutes=10), patient_id=pid)
            body = check_in_body(last, "1970-05-05")
            corrs = [first.send(probes[0], body), second.send(probes[1], body)]
            with_desk = round_ % 2 == 1
            r = (
                desk.post(f"/appointments/{appt['id']}/status", json={"status": "checked_in"})
                if with_desk
                else None
            )
            answers = [first.answer(probes[0], corrs[0]), second.answer(probes[1], corrs[1])]
            oks = [a for a in answers if a["ok"]]
            desk_won = r is not None and r.status_code == 200
            if r is not None:
                assert r.status_code in (200, 409), r.text
            assert len(oks) + int(desk_won) == 1, (answers, r and r.status_code)
            for a in answers:
                if not a["ok"]:
                    assert a == {"ok": False, "reason": "already_checked_in"}
            assert status_of(clinic, appt["id"]) == "checked_in"
            events = [e for e in checkins(clinic) if e["entityId"] == appt["id"]]
            assert len(events) == 1
    finally:
        for p in probes:
            p.close()


def test_oversized_payloads_are_dropped_and_a_flood_is_answered_rate_limited(
    clinic: Clinic,
) -> None:
    clinic.book(start=NOW() + timedelta(minutes=5))
    kiosk = KioskDevice.enroll(clinic)
    probe = kiosk.connect()
    try:
        big = json.dumps({**check_in_body(), "p": "x" * 5000})
        kiosk.send(probe, big)
        assert nothing_for(probe, 1.0) == []
        # Ten at once: five get through (invalid bodies: nothing is written), the rest
        # are answered rate_limited without a database read, and nothing is stored.
        time.sleep(1.1)
        sent = [kiosk.send(probe, "not json", paced=False) for _ in range(10)]
        answers = [kiosk.answer(probe, c) for c in sent]
        reasons = [a["reason"] for a in answers]
        assert reasons.count("rate_limited") >= 5, reasons
        assert set(reasons) <= {"invalid", "rate_limited"}
        limited = sent[reasons.index("rate_limited")]
        time.sleep(1.1)
        # A rate_limited answer is not kept: the same correlation data is answered afresh.
        assert kiosk.answer(probe, kiosk.send(probe, correlation=limited))["ok"] is True
    finally:
        probe.close()
