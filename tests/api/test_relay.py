"""The outbox relay against the real broker and database: a commit wakes it (no
polling on the hot path), a publish the broker refused is not marked published and
goes out once allowed, a change the api refused publishes nothing, and a mark that
failed republishes without sending meta/seq backwards."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import time
from collections.abc import Iterator
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.runtime import known_patients
from hub.db import make_engine, make_sessionmaker
from hub.mosquitto import BrokerLayout
from hub.outbox import outbox_stats, prepare_event
from hub.relay import Relay
from hub.writer import EventWriter
from tests.conftest import BACKENDS, _require_backend
from tests.support.clinic import Clinic
from tests.support.mqtt import WAIT, Probe, Received, dynsec
from tests.support.stack import Stack

SESSION = {"clean_start": False, "session_expiry": 3600}
DYNSEC = "$CONTROL/dynamic-security/v1"
SERVICE_ROLE = "hub.service"
SERVICE_ACL = {"acltype": "publishClientSend", "topic": "tenants/#"}
# How long a refused event must be seen staying unpublished: several relay retries
# (its backoff starts at about 0.1 s and doubles while the broker keeps refusing).
REFUSED_FOR = 2.0


@pytest.fixture(params=BACKENDS)
def unpolled_stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    """A stack of its own whose relay polls only every ten minutes: whatever it
    publishes within seconds, it published because a commit woke it."""
    _require_backend(request.param)
    s = Stack.create(request.param, tmp_path / "stack", HUB_RELAY_POLL_INTERVAL_SECONDS="600")
    yield s
    s.close()


def _appointment_filter(clinic: Clinic) -> str:
    return f"tenants/{clinic.tenant}/patients/+/appointment/+/+"


def _events(messages: list[Received]) -> list[dict[str, Any]]:
    """The event envelopes among ``messages`` (not snapshots, not meta)."""
    return [m.json() for m in messages if m.payload and not m.retain and "/meta/" not in m.topic]


def _checks(stack: Stack) -> dict[str, Any]:
    checks: dict[str, Any] = httpx.get(stack.api.base_url + "/readyz", timeout=5).json()["checks"]
    return checks


@contextlib.contextmanager
def _broker_admin(stack: Stack) -> Iterator[Probe]:
    admin = stack.broker.admin_probe()
    assert not admin.connect().is_failure
    try:
        assert not admin.subscribe(f"{DYNSEC}/response").is_failure
        yield admin
    finally:
        admin.close()


def _dynsec(admin: Probe, command: dict[str, Any]) -> dict[str, Any]:
    """Run one dynsec command as the broker admin; its reply, which must not be an error."""
    (response,) = dynsec(admin, command)
    assert "error" not in response, response
    return response


def _service_acls(admin: Probe) -> list[tuple[str, str, bool]]:
    role = _dynsec(admin, {"command": "getRole", "rolename": SERVICE_ROLE})["data"]["role"]
    return [(a["acltype"], a["topic"], a["allow"]) for a in role["acls"]]


def test_relay_wakes_at_commit_without_polling(unpolled_stack: Stack) -> None:
    stack = unpolled_stack
    clinic = Clinic.create(stack)
    probe = stack.connected_probe(clinic.front_desk, transport="tcp")
    try:
        assert not probe.subscribe(_appointment_filter(clinic)).is_failure
        # Twice: the relay goes back to waiting after a pass and is woken again.
        for _ in range(2):
            appt = clinic.book()
            # Raises after WAIT (15 s); without the wake it would take up to 600 s.
            event = probe.wait_event("appointment:created", appt["id"]).json()
            assert event["seq"] == clinic.latest_seq()
    finally:
        probe.close()


def test_a_refused_publish_is_not_marked_published_and_goes_out_once_allowed(
    private_stack: Stack,
) -> None:
    stack = private_stack
    clinic = Clinic.create(stack)
    stack.wait_published()  # the clinic's own setup is out of the way
    creds = stack.credentials(clinic.front_desk)
    sub = stack.probe(creds, transport="tcp", **SESSION)
    assert not sub.connect().is_failure
    try:
        assert not sub.subscribe(_appointment_filter(clinic)).is_failure

        # The broker stops letting the relay publish (and disconnects it).
        with _broker_admin(stack) as admin:
            _dynsec(admin, {"command": "removeRoleACL", "rolename": SERVICE_ROLE, **SERVICE_ACL})
            assert ("publishClientSend", "tenants/#", True) not in _service_acls(admin)

        appt = clinic.book()
        booked_at = time.monotonic()
        deadline = booked_at + WAIT + REFUSED_FOR
        refused = False
        while True:
            checks = _checks(stack)
            # Refused (PUBACK 0x87) is not acknowledged: the event stays in the outbox.
            assert checks["relayLag"]["unpublished"] >= 1, checks
            error = checks["broker"]["lastError"] or ""
            refused = refused or ("refused" in error and "Not authorized" in error)
            if refused and time.monotonic() - booked_at >= REFUSED_FOR:
                break
            assert time.monotonic() < deadline, f"the relay never reported a refusal: {checks}"
            time.sleep(0.1)
        refused_ids = [e["entityId"] for e in _events(sub.drain())]
        assert appt["id"] not in refused_ids
        assert sub.disconnects.empty()

        # Allowed again: the event goes out, once.
        with _broker_admin(stack) as admin:
            _dynsec(
                admin,
                {
                    "command": "addRoleACL",
                    "rolename": SERVICE_ROLE,
                    **SERVICE_ACL,
                    "allow": True,
                    "priority": 0,
                },
            )
            assert ("publishClientSend", "tenants/#", True) in _service_acls(admin)
        first = sub.wait_event("appointment:created", appt["id"]).json()
        barrier = clinic.book()
        sub.wait_event("appointment:created", barrier["id"])
        ids = [first["id"], *(e["id"] for e in _events(sub.drain()))]
        assert ids.count(first["id"]) == 1, ids
        stack.wait_published()
    finally:
        sub.close()


def test_a_rejected_change_publishes_nothing(stack: Stack, clinic: Clinic) -> None:
    http = stack.http(clinic.front_desk)
    probe = stack.connected_probe(clinic.front_desk, transport="tcp")
    try:
        assert not probe.subscribe(_appointment_filter(clinic)).is_failure
        appt = clinic.book()
        created = probe.wait_event("appointment:created", appt["id"]).json()
        r = http.post(
            f"/appointments/{appt['id']}/status", json={"status": "cancelled", "reason": "ill"}
        )
        assert r.status_code == 200, r.text
        cancelled = probe.wait_event("appointment:cancelled", appt["id"]).json()
        probe.drain()  # from here on, only what arrives after the cancel event

        # Refused changes: an illegal transition, an invalid and a forbidden reschedule.
        r = http.post(f"/appointments/{appt['id']}/status", json={"status": "checked_in"})
        assert r.status_code == 409, r.text
        start = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
        r = http.post(
            f"/appointments/{appt['id']}/reschedule",
            json={
                "scheduledStart": start.isoformat(),
                "scheduledEnd": (start - timedelta(minutes=30)).isoformat(),
            },
        )
        assert r.status_code == 422, r.text
        r = http.post(
            f"/appointments/{appt['id']}/reschedule",
            json={
                "scheduledStart": start.isoformat(),
                "scheduledEnd": (start + timedelta(minutes=30)).isoformat(),
            },
        )
        assert r.status_code == 409, r.text
        assert http.get(f"/appointments/{appt['id']}").json()["status"] == "cancelled"

        # Published in seq order: once the barrier arrived, anything before it has too.
        barrier = clinic.book()
        last = probe.wait_event("appointment:created", barrier["id"]).json()
        between = _events(probe.drain())
        # Delivery is at least once: the cancel event may come again, nothing else may.
        assert [
            e for e in between if e["entityId"] == appt["id"] and e["id"] != cancelled["id"]
        ] == []
        assert last["seq"] == cancelled["seq"] + 1

        page = http.get("/events", params={"after": created["seq"] - 1}).json()
        assert [(e["seq"], e["type"], e["entityId"]) for e in page["events"]] == [
            (created["seq"], "appointment:created", appt["id"]),
            (cancelled["seq"], "appointment:cancelled", appt["id"]),
            (last["seq"], "appointment:created", barrier["id"]),
        ]
        assert page["latestSeq"] == last["seq"]
    finally:
        probe.close()


def test_a_failed_mark_republishes_without_sending_meta_seq_backwards(
    tmp_path: Path,
) -> None:
    """SQLite: the relay hands its marks to the event writer and does not wait for
    them before its next fetch. When a mark fails, the batch is published again, and
    the tenant's retained meta/seq never goes back (a subscriber would see a newer seq
    replaced by an older one). The relay and writer run here, in the test's process,
    on the stack's broker and database; the first mark fails."""
    stack = Stack.create("sqlite", tmp_path / "stack")
    try:
        clinic = Clinic.create(stack)
        stack.api.stop()  # this test's relay publishes instead
        reader = stack.reader()
        reader.subscribe(f"tenants/{clinic.tenant}/meta/seq")
        reader.subscribe(f"tenants/{clinic.tenant}/patients/+/patient/#")
        reader.drain()
        seqs = asyncio.run(_relay_with_a_failing_mark(stack, clinic))
        received = _until_seq(reader, clinic.tenant, seqs[-1])
        reader.close()
    finally:
        stack.close()
    metas = [m.json()["seq"] for m in received if m.topic.endswith("/meta/seq")]
    assert metas == sorted(metas), metas  # never backwards
    assert metas[-1] == seqs[-1]
    events = [m.json()["seq"] for m in received if "/patient/" in m.topic]
    assert sorted(set(events)) == seqs  # every event, some of them twice
    assert len(events) > len(seqs)  # the batch whose mark failed went out again


async def _relay_with_a_failing_mark(stack: Stack, clinic: Clinic) -> list[int]:
    engine = make_engine(stack.db.url)
    sessions, read_sessions = make_sessionmaker(engine), make_sessionmaker(engine, read_only=True)
    writer = EventWriter(engine, known_patients=known_patients)
    writer.start()
    calls = 0

    def marker(pks: list[int], at: datetime) -> Future[Any]:
        nonlocal calls
        calls += 1
        if calls == 1:
            failed: Future[Any] = Future()
            failed.set_exception(RuntimeError("simulated: the mark did not commit"))
            return failed
        return writer.submit_marks(pks, at)

    password = BrokerLayout(Path(stack.api.env["HUB_DATA_DIR"])).secrets().service_password
    relay = Relay(
        sessions=sessions,
        read_sessions=read_sessions,
        host="127.0.0.1",
        port=stack.broker.mqtt_port,
        username="hub-service",
        password=password,
        batch_size=2,
        poll_interval=0.2,
        marker=marker,
    )
    try:
        events = [
            prepare_event(
                tenant=clinic.tenant,
                event_type="patient:balance_changed",
                actor="svc-1",
                patient_id=clinic.patient_id,
                entity_id=clinic.patient_id,
                data={
                    "patientId": clinic.patient_id,
                    "balanceCents": n,
                    "previousBalanceCents": 0,
                    "reason": "copay",
                },
            )
            for n in range(6)
        ]
        emitted = await writer.write(events)  # committed before the relay starts
        async with relay:
            for _ in range(200):  # bounded: 20 s
                with sessions() as s:
                    if outbox_stats(s).unpublished == 0:
                        break
                await asyncio.sleep(0.1)
            assert calls >= 2
    finally:
        await asyncio.to_thread(writer.close)
        engine.dispose()
    return [e.seq for e in emitted]


def _until_seq(reader: Probe, tenant: str, last: int) -> list[Received]:
    """What ``reader`` received, in order, up to the meta/seq of ``last``, then for a
    short while longer (anything published after it)."""
    got: list[Received] = []
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        try:
            msg = reader.messages.get(timeout=0.5)
        except queue.Empty:
            continue
        got.append(msg)
        if msg.topic == f"tenants/{tenant}/meta/seq" and msg.json()["seq"] == last:
            break
    else:
        raise AssertionError(f"meta/seq never reached {last}: {[m.topic for m in got]}")
    time.sleep(0.5)
    got.extend(reader.drain())
    return got
