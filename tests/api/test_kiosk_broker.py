"""What a kiosk's broker credentials allow (exactly its request and response topics),
forged response topics, and several api processes sharing the requests."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta

from tests.support.clinic import Clinic
from tests.support.kiosk import KioskDevice, check_in_body, nothing_for
from tests.support.stack import Stack

NOT_AUTHORIZED = 0x87


def test_kiosk_credentials_reach_only_the_kiosks_own_topics(
    clinic: Clinic, other_clinic: Clinic
) -> None:
    kiosk = KioskDevice.enroll(clinic, "k-a")
    neighbour = KioskDevice.enroll(clinic, "k-b")
    foreign = KioskDevice.enroll(other_clinic, "k-a")  # the same id in another tenant
    t = clinic.tenant
    probe = kiosk.connect(subscribe=False)
    try:
        for refused in (
            "#",
            f"tenants/{t}/#",
            f"tenants/{t}/patients/#",
            f"tenants/{t}/patients/{clinic.patient_id}/appointment/+/+",
            f"tenants/{t}/meta/seq",
            f"tenants/{t}/users/fd-1/#",
            f"tenants/{t}/kiosks/+/responses",
            neighbour.responses,
            foreign.responses,
            kiosk.requests,  # not even its own requests
            f"$share/g/{kiosk.requests}",
            "$SYS/#",
            "$CONTROL/#",
        ):
            assert probe.subscribe(refused).value == NOT_AUTHORIZED, refused
        assert probe.subscribe(kiosk.responses).value == 1
        for topic in (
            neighbour.requests,
            foreign.requests,
            kiosk.responses,  # it cannot forge its own answers
            neighbour.responses,
            f"tenants/{t}/patients/{clinic.patient_id}/appointment/a-1/checkedin",
            f"tenants/{t}/meta/seq",
            "$CONTROL/dynamic-security/v1",
        ):
            assert probe.publish(topic, "{}").value == NOT_AUTHORIZED, topic
        # Patient events of its own tenant happen meanwhile: none of them arrives.
        clinic.book(start=datetime.now(UTC) + timedelta(hours=5))
        neighbour_probe = neighbour.connect()
        try:
            neighbour.ask(neighbour_probe, check_in_body("Nobody", "2001-01-01"))
        finally:
            neighbour_probe.close()
        assert nothing_for(probe, 1.0) == []
    finally:
        probe.close()


def test_a_forged_response_topic_gets_no_answer(clinic: Clinic) -> None:
    appt = clinic.book(start=datetime.now(UTC) + timedelta(minutes=5))
    kiosk = KioskDevice.enroll(clinic, "k-a")
    victim = KioskDevice.enroll(clinic, "k-b")
    probe, watcher = kiosk.connect(), victim.connect()
    try:
        kiosk.send(probe, response_topic=victim.responses)
        kiosk.send(probe, response_topic=f"tenants/{clinic.tenant}/patients/x/appointment/y/z")
        assert nothing_for(watcher, 1.5) == []
        assert nothing_for(probe, 0.1) == []
        r = clinic.stack.http(clinic.front_desk).get(f"/appointments/{appt['id']}")
        assert r.json()["status"] == "scheduled"
    finally:
        probe.close()
        watcher.close()


def test_two_api_processes_answer_fifty_concurrent_requests_once_each(
    private_stack: Stack,
) -> None:
    stack = private_stack
    clinic = Clinic.create(stack)
    stack.add_api()
    start = datetime.now(UTC) + timedelta(minutes=10)
    names = [f"Patient{chr(65 + i // 26)}{chr(65 + i % 26)}" for i in range(50)]
    for name in names:
        r = stack.http(clinic.front_desk).post(
            "/patients", json={"firstName": "Test", "lastName": name, "dateOfBirth": "1980-05-05"}
        )
        assert r.status_code == 201, r.text
        clinic.book(start=start, patient_id=r.json()["id"])
    kiosks = [KioskDevice.enroll(clinic, f"k-{i}") for i in range(5)]
    probes = [k.connect() for k in kiosks]
    try:
        sent: list[tuple[int, bytes]] = []
        for i, name in enumerate(names):
            k = i % len(kiosks)
            corr = kiosks[k].send(probes[k], check_in_body(name, "1980-05-05"))
            sent.append((k, corr))
        # Each one again with the same correlation data, at once (a redelivery): the two
        # copies may be handled by the two processes at the same time.
        for (k, corr), name in zip(sent, names, strict=True):
            kiosks[k].send(probes[k], check_in_body(name, "1980-05-05"), correlation=corr)
        answers: Counter[bytes] = Counter()
        bodies: dict[bytes, list[str]] = {}
        for k, corr in sent:
            for _ in range(2):
                msg = probes[k].wait_for(lambda m, c=corr: m.correlation == c)  # type: ignore[misc]
                answers[corr] += 1
                bodies.setdefault(corr, []).append(msg.payload.decode())
        assert all(n == 2 for n in answers.values())
        # Both copies got the same answer: the one check-in.
        for corr, (first, second) in bodies.items():
            assert first == second, corr
            assert json.loads(first)["ok"] is True
        for p in probes:
            assert nothing_for(p, 0.5) == []  # nothing more: each answered exactly once
        r = stack.http(clinic.front_desk).get(
            "/events", params={"after": 0, "types": "appointment:checkedin", "limit": 1000}
        )
        events = r.json()["events"]
        assert len(events) == 50
        assert len({e["entityId"] for e in events}) == 50
        assert {e["actor"] for e in events} == {k.id for k in kiosks}
    finally:
        for p in probes:
            p.close()
