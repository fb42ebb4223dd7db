"""Two api processes (two relays) on one database and one broker: one relay is active
and the other stands by; every committed event is published exactly once, in seq
order per tenant, while both processes write at once; when the active process is
killed, the other takes over and nothing is lost or reordered."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from hub.leader import LEADER_APPLICATION_NAME
from tests.conftest import _require_backend
from tests.support.clinic import Clinic
from tests.support.mqtt import WAIT, Probe, Received
from tests.support.stack import Api, Stack

EVENT_FILTER = "tenants/+/patients/+/+/+/+"
META_FILTER = "tenants/+/meta/seq"
# Generous bounds for a whole workload on a small machine, not performance claims.
SETTLE = 120.0


def _ready(api: Api) -> dict[str, Any]:
    r = httpx.get(api.base_url + "/readyz", timeout=5)
    body: dict[str, Any] = r.json()
    assert r.status_code == 200, body
    return body["checks"]


def _wait(condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _roles(*apis: Api) -> list[str]:
    """Each api's relay role, or "not ready" (a moment after a lost connection)."""
    roles = []
    for api in apis:
        r = httpx.get(api.base_url + "/readyz", timeout=5)
        roles.append(r.json()["checks"]["relay"]["role"] if r.status_code == 200 else "not ready")
    return roles


def _active_and_standby(first: Api, second: Api) -> tuple[Api, Api]:
    """Once the two relays agree: (the api whose relay is active, the standby)."""
    _wait(lambda: sorted(_roles(first, second)) == ["active", "standby"], "one active relay")
    return (first, second) if _roles(first)[0] == "active" else (second, first)


def _committed(stack: Stack, clinic: Clinic, via: Api) -> list[dict[str, Any]]:
    """Every committed event of the clinic's tenant, oldest first (GET /events)."""
    http = stack.http(clinic.front_desk, api=via)
    events: list[dict[str, Any]] = []
    while True:
        after = events[-1]["seq"] if events else 0
        page = http.get("/events", params={"after": after, "limit": 500}).json()
        events += page["events"]
        if not page["events"]:
            return events


class Inbox:
    """What one subscriber received, split into events and meta/seq values per tenant."""

    def __init__(self, probe: Probe) -> None:
        self.probe = probe
        self.events: dict[str, list[dict[str, Any]]] = {}
        self.meta: dict[str, list[int]] = {}

    def take(self) -> None:
        for m in self.probe.drain():
            self._add(m)

    def _add(self, m: Received) -> None:
        tenant = m.topic.split("/")[1]
        if m.topic.endswith("/meta/seq"):
            if not m.retain:
                self.meta.setdefault(tenant, []).append(m.json()["seq"])
        elif m.payload and not m.retain:
            self.events.setdefault(tenant, []).append(m.json())

    def ids(self, tenant: str) -> list[str]:
        return [e["id"] for e in self.events.get(tenant, [])]

    def wait_for(self, clinic: Clinic, event_id: str, timeout: float = SETTLE) -> None:
        def arrived() -> bool:
            self.take()
            return event_id in self.ids(clinic.tenant)

        _wait(arrived, f"event {event_id} of {clinic.tenant}", timeout)


def _subscribe(stack: Stack) -> Inbox:
    probe = stack.reader()
    assert not probe.subscribe(EVENT_FILTER).is_failure
    assert not probe.subscribe(META_FILTER).is_failure
    return Inbox(probe)


def _settle(stack: Stack, got: Inbox, clinics: list[Clinic], via: Api) -> None:
    """Book one last appointment per tenant and wait for it. Batches go out in order
    and a batch is marked before the next one starts, so once the last event arrived,
    every earlier one (and any re-send of it) has too."""
    for clinic in clinics:
        last = clinic.book(via=via)
        barrier = _committed(stack, clinic, via)[-1]
        assert barrier["entityId"] == last["id"]
        got.wait_for(clinic, barrier["id"])


def _write(
    stack: Stack, clinic: Clinic, via: Api, count: int, errors: list[BaseException]
) -> threading.Thread:
    """Book ``count`` appointments through ``via``, checking every other one in."""

    def run() -> None:
        try:
            http = stack.http(clinic.front_desk, api=via)
            for i in range(count):
                start = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=i)
                appt = clinic.book(start=start, via=via)
                if i % 2 == 0:
                    path = f"/appointments/{appt['id']}/status"
                    r = http.post(path, json={"status": "checked_in"})
                    assert r.status_code == 200, r.text
        except BaseException as exc:
            errors.append(exc)

    return threading.Thread(target=run, name=f"writer-{clinic.tenant}-{via.port}", daemon=True)


def _join(
    threads: list[threading.Thread], errors: list[BaseException], *, started: bool = False
) -> None:
    """Run the writers (unless ``started``) to the end; none may have failed."""
    for t in threads:
        if not started:
            t.start()
    for t in threads:
        t.join(SETTLE)
        assert not t.is_alive(), f"{t.name} did not finish"
    assert not errors, errors


@dataclass
class TwoApis:
    stack: Stack
    got: Inbox
    one: Clinic
    two: Clinic
    active: Api
    standby: Api


@contextlib.contextmanager
def _two_apis(stack: Stack) -> Iterator[TwoApis]:
    """A subscriber to every tenant, two clinics, and a second api process."""
    got = _subscribe(stack)
    try:
        one, two = Clinic.create(stack), Clinic.create(stack)
        second = stack.add_api()
        active, standby = _active_and_standby(stack.api, second)
        yield TwoApis(stack, got, one, two, active, standby)
    finally:
        got.probe.close()


@pytest.fixture
def two_apis(private_stack: Stack) -> Iterator[TwoApis]:
    with _two_apis(private_stack) as pair:
        yield pair


def test_starting_a_second_api_disconnects_no_relay(private_stack: Stack) -> None:
    stack = private_stack
    _wait(lambda: _roles(stack.api) == ["active"], "the only relay to be active")
    before = _ready(stack.api)["relay"]
    second = stack.add_api()
    assert _ready(second)["relay"]["role"] == "standby"
    # The first relay kept its connection: the service account's password was not reset.
    after = _ready(stack.api)["relay"]
    assert after["connectedSince"] == before["connectedSince"], (before, after)
    assert after["role"] == "active"


def test_two_apis_writing_at_once_publish_every_event_once_in_seq_order(
    two_apis: TwoApis,
) -> None:
    stack, got, busy, quiet = two_apis.stack, two_apis.got, two_apis.one, two_apis.two
    first, second = two_apis.active, two_apis.standby
    errors: list[BaseException] = []
    _join(
        [
            _write(stack, busy, first, 12, errors),
            _write(stack, busy, second, 12, errors),
            _write(stack, quiet, first, 5, errors),
            _write(stack, quiet, second, 5, errors),
        ],
        errors,
    )
    _settle(stack, got, [busy, quiet], second)

    for clinic in (busy, quiet):
        committed = _committed(stack, clinic, first)
        # Gapless under concurrent writers in two processes.
        assert [e["seq"] for e in committed] == list(range(1, len(committed) + 1))
        received = got.events[clinic.tenant]
        # Exactly once, and in seq order.
        assert [e["seq"] for e in received] == [e["seq"] for e in committed]
        assert received == committed
        # meta/seq never goes back, and ends at the newest seq.
        meta = got.meta[clinic.tenant]
        assert meta == sorted(meta), meta
        assert meta[-1] == committed[-1]["seq"]
    # Still one active relay and one standby, both ready.
    assert _roles(first, second) == ["active", "standby"]


def test_when_the_active_api_is_killed_the_standby_publishes_without_loss_or_reordering(
    two_apis: TwoApis,
) -> None:
    pair = two_apis
    errors: list[BaseException] = []
    writers = [
        _write(pair.stack, clinic, pair.standby, 20, errors) for clinic in (pair.one, pair.two)
    ]
    for t in writers:
        t.start()
    # Kill the active process once it is visibly publishing the new writes.
    seen = len(pair.got.ids(pair.one.tenant))

    def publishing() -> bool:
        pair.got.take()
        return len(pair.got.ids(pair.one.tenant)) >= seen + 3

    _wait(publishing, "the active relay publishing the writes", SETTLE)
    assert pair.active.proc is not None
    pair.active.kill()  # SIGKILL, by the pid this test started
    _join(writers, errors, started=True)

    _wait(lambda: _roles(pair.standby) == ["active"], "the standby taking over", SETTLE)
    _settle(pair.stack, pair.got, [pair.one, pair.two], pair.standby)

    for clinic in (pair.one, pair.two):
        committed = _committed(pair.stack, clinic, pair.standby)
        assert [e["seq"] for e in committed] == list(range(1, len(committed) + 1))
        ids = pair.got.ids(clinic.tenant)
        # Nothing lost. A batch in flight when the process died may come again
        # (at least once); subscribers drop it by id.
        assert set(ids) == {e["id"] for e in committed}
        # Order kept: first arrivals are exactly the seq order.
        assert list(dict.fromkeys(ids)) == [e["id"] for e in committed]
        # Retained meta/seq ends at the newest seq.
        assert pair.got.meta[clinic.tenant][-1] == committed[-1]["seq"]


@pytest.fixture
def unpolled_pg_stack(tmp_path: Path) -> Iterator[Stack]:
    """PostgreSQL, relays that poll only every ten minutes."""
    _require_backend("postgresql")
    s = Stack.create("postgresql", tmp_path / "stack", HUB_RELAY_POLL_INTERVAL_SECONDS="600")
    yield s
    s.close()


@pytest.mark.postgres
def test_a_commit_in_the_standbys_process_wakes_the_active_relay_at_once(
    unpolled_pg_stack: Stack,
) -> None:
    with _two_apis(unpolled_pg_stack) as pair:
        for _ in range(2):  # it goes back to waiting and is woken again
            appt = pair.one.book(via=pair.standby)
            # Within WAIT (15 s); the poll would take up to 600 s.
            newest = _committed(pair.stack, pair.one, pair.standby)[-1]
            pair.got.wait_for(pair.one, newest["id"], WAIT)
            assert newest["entityId"] == appt["id"]
        assert _roles(pair.active, pair.standby) == ["active", "standby"]


@pytest.fixture
def pg_two_apis(tmp_path: Path) -> Iterator[TwoApis]:
    _require_backend("postgresql")
    stack = Stack.create("postgresql", tmp_path / "stack")
    try:
        with _two_apis(stack) as pair:
            yield pair
    finally:
        stack.close()


@pytest.mark.postgres
def test_losing_the_leadership_connection_keeps_publication_exactly_once(
    pg_two_apis: TwoApis,
) -> None:
    pair = pg_two_apis
    errors: list[BaseException] = []
    _join([_write(pair.stack, pair.one, pair.active, 4, errors)], errors)
    # The server ends the active relay's leadership connection (a network blip, an
    # administrator's pg_terminate_backend): the lock goes with it.
    engine = sa.create_engine(pair.stack.db.url)
    try:
        with engine.begin() as conn:
            ended = conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE application_name = :name AND datname = current_database()"
                    " AND pid IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory')"
                ),
                {"name": LEADER_APPLICATION_NAME},
            ).all()
        assert ended == [(True,)]
    finally:
        engine.dispose()
    # One of the two relays leads again (either may win), and both are ready.
    _wait(
        lambda: sorted(_roles(pair.active, pair.standby)) == ["active", "standby"],
        "one active relay again",
        SETTLE,
    )
    _join(
        [
            _write(pair.stack, clinic, api, 4, errors)
            for clinic in (pair.one, pair.two)
            for api in (pair.active, pair.standby)
        ],
        errors,
    )
    _settle(pair.stack, pair.got, [pair.one, pair.two], pair.standby)
    for clinic in (pair.one, pair.two):
        committed = _committed(pair.stack, clinic, pair.standby)
        assert pair.got.events[clinic.tenant] == committed
