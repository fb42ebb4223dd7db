"""Nothing committed is lost: broker outages, api crashes, offline subscribers,
replay, and concurrent writers."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from tests.support.clinic import Clinic
from tests.support.mqtt import Probe, Received
from tests.support.stack import Stack


def _events_of(messages: list[Received]) -> list[dict[str, Any]]:
    """The event envelopes among ``messages`` (not snapshots, not meta/seq)."""
    return [m.json() for m in messages if m.payload and not m.retain and "/meta/" not in m.topic]


def _event_ids(messages: list[Received]) -> list[str]:
    return [e["id"] for e in _events_of(messages)]


def _persistent(stack: Stack, clinic: Clinic) -> tuple[dict, Probe]:
    creds = stack.credentials(clinic.front_desk)
    probe = stack.reconnect(creds)
    assert not probe.subscribe(f"tenants/{clinic.tenant}/patients/+/appointment/+/+").is_failure
    return creds, probe


def _wait_unpublished(stack: Stack, at_least: int) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        body = httpx.get(stack.api.base_url + "/readyz", timeout=5).json()
        if body["checks"]["relayLag"]["unpublished"] >= at_least:
            return
        time.sleep(0.1)
    raise AssertionError("the event never showed as unpublished")


def test_event_committed_while_broker_is_down_is_delivered_once_after_it_returns(
    private_stack: Stack,
) -> None:
    stack = private_stack
    clinic = Clinic.create(stack)
    creds, probe = _persistent(stack, clinic)
    probe.close()
    stack.broker.stop()
    try:
        appt = clinic.book()  # the api commits without the broker
        _wait_unpublished(stack, 1)
        ready = httpx.get(stack.api.base_url + "/readyz", timeout=5)
        assert ready.status_code == 503
        assert ready.json()["checks"]["broker"]["ok"] is False
    finally:
        stack.broker.start()
    back = stack.reconnect(creds)
    try:
        first = back.wait_event("appointment:created", appt["id"])
        barrier = clinic.book()
        back.wait_event("appointment:created", barrier["id"])
        ids = [first.json()["id"], *_event_ids(back.drain())]
        assert ids.count(first.json()["id"]) == 1
    finally:
        back.close()


def test_relay_publishes_what_a_crashed_api_left_behind(private_stack: Stack) -> None:
    stack = private_stack
    clinic = Clinic.create(stack)
    creds, probe = _persistent(stack, clinic)
    probe.close()
    stack.broker.stop()
    appt = clinic.book()
    stack.api.kill()  # kill -9: the event is committed but was never published
    stack.broker.start()
    stack.api.start()
    back = stack.reconnect(creds)
    try:
        assert (
            back.wait_event("appointment:created", appt["id"]).json()["seq"] == clinic.latest_seq()
        )
    finally:
        back.close()


def test_queued_events_survive_a_broker_crash(private_stack: Stack) -> None:
    """autosave_interval 2: a kill -9 loses at most the last two seconds, not 30 minutes."""
    stack = private_stack
    clinic = Clinic.create(stack)
    creds, probe = _persistent(stack, clinic)
    probe.close()
    appt = clinic.book()
    # Published (so queued in the broker for the offline session) ...
    deadline = time.monotonic() + 15
    while httpx.get(stack.api.base_url + "/readyz", timeout=5).json()["checks"]["relayLag"][
        "unpublished"
    ]:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    # ... and past the broker's next autosave (every ~2 s in whole seconds, so up to
    # 3 s, later on a loaded machine): wait for it rather than sleep a fixed time.
    since = time.time()
    db = stack.broker.layout.state_dir / "mosquitto.db"
    deadline = time.monotonic() + 30
    while not (db.exists() and db.stat().st_mtime > since + 0.05):
        assert time.monotonic() < deadline, "the broker never autosaved"
        time.sleep(0.1)
    stack.broker.kill()
    stack.broker.start()
    back = stack.reconnect(creds)
    try:
        assert back.session_present
        back.wait_event("appointment:created", appt["id"])
    finally:
        back.close()


def test_persistent_session_gets_what_it_missed_in_order(stack: Stack, clinic: Clinic) -> None:
    creds, probe = _persistent(stack, clinic)
    probe.close()
    booked = [clinic.book() for _ in range(3)]
    http = stack.http(clinic.front_desk)
    assert (
        http.post(
            f"/appointments/{booked[0]['id']}/status", json={"status": "checked_in"}
        ).status_code
        == 200
    )
    back = stack.reconnect(creds)
    try:
        assert back.session_present
        back.wait_event("appointment:checkedin", booked[0]["id"])
        got = [m.json() for m in back.drain() if m.payload and not m.retain]
        got.append({"type": "appointment:checkedin"})
        types = [e["type"] for e in got]
        assert types == ["appointment:created"] * 3 + ["appointment:checkedin"]
        seqs = [e["seq"] for e in got[:-1]]
        assert seqs == sorted(seqs)
    finally:
        back.close()


def test_replay_returns_exactly_the_missed_range(stack: Stack, clinic: Clinic) -> None:
    http = stack.http(clinic.front_desk)
    booked = [clinic.book() for _ in range(5)]
    latest = clinic.latest_seq()
    page = http.get("/events", params={"after": latest - 3}).json()
    assert page["latestSeq"] == latest
    assert [e["seq"] for e in page["events"]] == [latest - 2, latest - 1, latest]
    assert [e["entityId"] for e in page["events"]] == [b["id"] for b in booked[-3:]]
    # Paging with limit walks the same range without gaps or repeats.
    seen, after = [], 0
    while True:
        chunk = http.get("/events", params={"after": after, "limit": 2}).json()["events"]
        if not chunk:
            break
        seen += [e["seq"] for e in chunk]
        after = chunk[-1]["seq"]
    assert seen == list(range(1, latest + 1))
    # Filters: by type and by patient.
    typed = http.get("/events", params={"after": 0, "types": "appointment:cancelled"}).json()
    assert typed["events"] == []
    by_patient = http.get("/events", params={"after": 0, "patientId": clinic.patient_id}).json()
    assert len(by_patient["events"]) == latest
    assert http.get("/events", params={"after": latest}).json()["events"] == []


def test_concurrent_writers_get_gapless_strictly_increasing_seqs(
    stack: Stack, clinic: Clinic
) -> None:
    probe = stack.connected_probe(clinic.front_desk, transport="tcp")
    try:
        probe.subscribe(f"tenants/{clinic.tenant}/patients/+/appointment/+/+")
        start = clinic.latest_seq()
        with ThreadPoolExecutor(max_workers=8) as pool:
            booked = list(pool.map(lambda _: clinic.book(), range(40)))
        latest = clinic.latest_seq()
        assert latest == start + 40
        events = (
            stack.http(clinic.front_desk)
            .get("/events", params={"after": start, "limit": 100})
            .json()["events"]
        )
        assert [e["seq"] for e in events] == list(range(start + 1, latest + 1))
        assert {e["entityId"] for e in events} == {b["id"] for b in booked}
        # Subscribers receive them in seq order.
        received: list[int] = []
        while len(received) < 40:
            m = probe.wait_for(lambda m: bool(m.payload) and not m.retain)
            received.append(m.json()["seq"])
        assert received == list(range(start + 1, latest + 1))
    finally:
        probe.close()


def test_replay_beyond_retention_is_gone(stack: Stack, clinic: Clinic) -> None:
    """When events after the client's seq were pruned, replay says so (410) instead
    of answering an incomplete page; the client refetches its view."""
    for _ in range(3):
        clinic.book()
    latest = clinic.latest_seq()
    engine = sa.create_engine(stack.db.url)
    try:
        with engine.begin() as conn:  # what pruning past retention does to the oldest
            # Pruning goes by age and keeps unpublished rows, so it can leave holes.
            conn.execute(
                sa.text("DELETE FROM events WHERE tenant = :t AND seq <= :s AND seq > 1"),
                {"t": clinic.tenant, "s": latest - 1},
            )
        http = stack.http(clinic.front_desk)
        assert http.get("/events", params={"after": latest - 3}).status_code == 410
        gone = http.get("/events", params={"after": 0})
        assert gone.status_code == 410
        assert gone.json()["error"] == "gone"
        assert (
            http.get("/events", params={"after": latest - 1}).json()["events"][0]["seq"] == latest
        )
        with engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM events WHERE tenant = :t"), {"t": clinic.tenant})
        assert http.get("/events", params={"after": latest - 1}).status_code == 410
        assert http.get("/events", params={"after": latest}).json() == {
            "events": [],
            "latestSeq": latest,
        }
    finally:
        engine.dispose()


def test_events_the_broker_dropped_from_a_full_queue_are_recovered_by_replay(
    tmp_path: Path,
) -> None:
    """Mosquitto drops QoS 1 messages silently once an offline session's queue is full
    (the publisher still gets its PUBACK). The contract's recovery finds the gap: the
    retained meta/seq is ahead of what arrived, and GET /events fills it."""
    stack = Stack.create("sqlite", tmp_path / "stack", broker_config=("max_queued_messages 3",))
    try:
        clinic = Clinic.create(stack)
        start = clinic.latest_seq()
        creds, probe = _persistent(stack, clinic)
        probe.close()
        booked = [clinic.book() for _ in range(6)]
        latest = clinic.latest_seq()
        assert latest == start + 6
        # The client comes back after the relay published all six (a 201 comes at
        # commit; the relay publishes a few milliseconds later).
        stack.wait_published()
        back = stack.reconnect(creds)
        try:
            assert back.session_present
            # What a client does on every connect: read the retained meta/seq.
            back.subscribe(f"tenants/{clinic.tenant}/meta/seq")
            meta = back.wait_for(lambda m: m.topic.endswith("/meta/seq") and m.retain)
            assert meta.json()["seq"] == latest
            received = [e["seq"] for e in _events_of(back.drain())]
            assert len(received) <= 3  # the broker kept no more than its queue allows
            have = max(received, default=start)
            assert have < latest  # the gap the client must notice
            page = stack.http(clinic.front_desk).get("/events", params={"after": have}).json()
            recovered = [e["seq"] for e in page["events"]]
            assert sorted(set(received) | set(recovered)) == list(range(start + 1, latest + 1))
            assert {e["entityId"] for e in page["events"]} <= {b["id"] for b in booked}
        finally:
            back.close()
    finally:
        stack.close()
