"""POST /events/batch (many events, one transaction), backpressure of the event
writer (503 with Retry-After instead of growing latency), and kill -9 while the
writer commits: every acknowledged event survives, seqs stay gapless."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from tests.conftest import BACKENDS, _require_backend
from tests.support.clinic import Clinic
from tests.support.stack import Stack


def balance(patient_id: str, cents: int, entity_id: str | None = None) -> dict[str, Any]:
    return {
        "type": "patient:balance_changed",
        "patientId": patient_id,
        "entityId": entity_id or patient_id,
        "data": {
            "patientId": patient_id,
            "balanceCents": cents,
            "previousBalanceCents": 0,
            "reason": "copay",
        },
    }


def replayed(stack: Stack, clinic: Clinic, after: int) -> list[dict[str, Any]]:
    r = stack.http(clinic.front_desk).get("/events", params={"after": after, "limit": 1000})
    assert r.status_code == 200, r.text
    events: list[dict[str, Any]] = r.json()["events"]
    return events


def test_a_batch_commits_in_order_and_reaches_subscribers(stack: Stack, clinic: Clinic) -> None:
    service = stack.token(clinic.tenant, "billing-sync", "service")
    before = clinic.latest_seq()
    probe = stack.connected_probe(clinic.front_desk)
    try:
        probe.subscribe(f"tenants/{clinic.tenant}/patients/{clinic.patient_id}/#")
        r = stack.http(service).post(
            "/events/batch",
            json={"events": [balance(clinic.patient_id, cents) for cents in (100, 200, 300)]},
        )
        assert r.status_code == 202, r.text
        out = r.json()["events"]
        assert [e["seq"] for e in out] == [before + 1, before + 2, before + 3]
        assert all(e["type"] == "patient:balance_changed" for e in out)
        got = [probe.wait_event("patient:balance_changed").json() for _ in out]
    finally:
        probe.close()
    assert [e["id"] for e in got] == [e["id"] for e in out]  # in order, each once
    assert [e["data"]["balanceCents"] for e in got] == [100, 200, 300]
    assert all(e["actor"] == "billing-sync" for e in got)
    assert [e["id"] for e in replayed(stack, clinic, before)] == [e["id"] for e in out]


def test_one_bad_event_rejects_the_whole_batch(
    stack: Stack, clinic: Clinic, other_clinic: Clinic
) -> None:
    http = stack.http(stack.token(clinic.tenant, "billing-sync", "service"))
    before = clinic.latest_seq()
    good = balance(clinic.patient_id, 100)
    invalid = balance(clinic.patient_id, 200)
    invalid["data"]["balanceCents"] = "lots"
    r = http.post("/events/batch", json={"events": [good, invalid]})
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "invalid_request"
    assert r.json()["message"].startswith("events[1]:")
    assert any(d["field"].startswith("events.1.data.balanceCents") for d in r.json()["details"])
    # Another tenant's patient is unknown here: 404, as for a single event.
    r = http.post("/events/batch", json={"events": [good, balance(other_clinic.patient_id, 5)]})
    assert r.status_code == 404, r.text
    assert other_clinic.patient_id in r.json()["message"]
    r = http.post("/events/batch", json={"events": [good, {**good, "type": "nope:never"}]})
    assert r.status_code == 422, r.text
    assert "unknown event type" in r.json()["message"]
    for body in ({"events": []}, {"events": [good] * 501}, {"events": good}, [good]):
        r = http.post("/events/batch", json=body)
        assert r.status_code == 422, r.text
    r = http.post(
        "/events/batch",
        content=b'{"events": ['
        + b",".join([b'{"type": "x", "data": {"n": "' + b"a" * 4000 + b'"}}'] * 300)
        + b"]}",
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 413, r.text
    r = http.post(
        "/events/batch", content=b'{"events": [', headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 422
    assert r.json()["error"] == "malformed_json"
    # Roles: a front desk may not publish, nor anyone without a token.
    r = stack.http(clinic.front_desk).post("/events/batch", json={"events": [good]})
    assert r.status_code == 403
    assert stack.http().post("/events/batch", json={"events": [good]}).status_code == 401
    assert clinic.latest_seq() == before
    assert replayed(stack, clinic, before) == []
    # The same batch without the bad event is accepted (the rejections were not noise).
    r = http.post("/events/batch", json={"events": [good, good]})
    assert r.status_code == 202, r.text
    assert clinic.latest_seq() == before + 2


def test_the_fast_path_answers_as_the_route_would(stack: Stack, clinic: Clinic) -> None:
    """POST /events is answered ahead of FastAPI (api/fastpath.py); the corners where
    a hand-written path could differ from FastAPI's answer the same."""
    service = stack.token(clinic.tenant, "billing-sync", "service")
    before = clinic.latest_seq()
    url = stack.api.base_url + "/events"
    body = json.dumps(balance(clinic.patient_id, 7)).encode()

    def post(headers: list[tuple[str, str]], content: bytes = body) -> httpx.Response:
        return httpx.post(url, content=content, headers=headers, timeout=10)

    as_json = ("Content-Type", "application/json")
    # HTTPBearer strips what follows the scheme.
    r = post([as_json, ("Authorization", f"Bearer  {service}")])
    assert r.status_code == 202, r.text
    # A charset parameter is still JSON.
    r = post(
        [
            ("Content-Type", "application/json; charset=utf-8"),
            ("Authorization", f"Bearer {service}"),
        ]
    )
    assert r.status_code == 202, r.text
    # Of repeated headers, the first counts (a front desk may not publish).
    r = post(
        [
            as_json,
            ("Authorization", f"Bearer {clinic.front_desk}"),
            ("Authorization", f"Bearer {service}"),
        ]
    )
    assert r.status_code == 403, r.text
    # Not an object, nested too deep, or not declared as JSON: a 4xx, never a 500.
    for content, ctype in (
        (b"[]", "application/json"),
        (b"[" * 20000, "application/json"),
        (body, "text/plain"),
    ):
        r = post([("Content-Type", ctype), ("Authorization", f"Bearer {service}")], content)
        assert 400 <= r.status_code < 500, (content[:10], r.status_code, r.text)
        assert "error" in r.json()
    # An unknown type is a 422 even for an unknown patient (the type is checked first).
    r = post(
        [as_json, ("Authorization", f"Bearer {service}")],
        json.dumps({**balance("p-nobody", 1), "type": "nope:never"}).encode(),
    )
    assert r.status_code == 422, r.text
    assert [e["data"]["balanceCents"] for e in replayed(stack, clinic, before)] == [7, 7]


def writer_check(stack: Stack) -> dict[str, Any]:
    checks: dict[str, Any] = httpx.get(stack.api.base_url + "/readyz", timeout=10).json()["checks"]
    return checks["writer"]


def wait_writer(stack: Stack, **expected: Any) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        check = writer_check(stack)
        if all(check[k] == v for k, v in expected.items()):
            return
        time.sleep(0.05)
    raise AssertionError(f"writer never reached {expected}: {writer_check(stack)}")


class DatabaseWriteLock:
    """Holds the write lock the event writer needs: SQLite's (BEGIN IMMEDIATE on the
    file), or on PostgreSQL the tenant's seq row (FOR UPDATE)."""

    def __init__(self, stack: Stack, tenant: str) -> None:
        self._sqlite: sqlite3.Connection | None = None
        self._pg: sa.Connection | None = None
        if stack.backend == "sqlite":
            path = sa.engine.make_url(stack.db.url).database
            assert path
            self._sqlite = sqlite3.connect(path, isolation_level=None)
            self._sqlite.execute("BEGIN IMMEDIATE")
        else:
            self._engine = sa.create_engine(stack.db.url)
            self._pg = self._engine.connect()
            self._pg.begin()
            row = self._pg.execute(
                sa.text("SELECT last_seq FROM tenant_sequences WHERE tenant = :t FOR UPDATE"),
                {"t": tenant},
            ).first()
            assert row is not None, "the tenant has no seq row yet"

    def release(self) -> None:
        if self._sqlite is not None:
            self._sqlite.execute("ROLLBACK")
            self._sqlite.close()
        if self._pg is not None:
            self._pg.rollback()
            self._pg.close()
            self._engine.dispose()


@pytest.mark.parametrize("backend", BACKENDS)
def test_past_its_bound_the_writer_answers_503_at_once_and_loses_nothing(
    tmp_path: Path, backend: str
) -> None:
    _require_backend(backend)
    stack = Stack.create(backend, tmp_path, HUB_WRITER_MAX_PENDING="2")
    try:
        clinic = Clinic.create(stack)
        http = stack.http(stack.token(clinic.tenant, "billing-sync", "service"))
        assert http.post("/events", json=balance(clinic.patient_id, 1)).status_code == 202
        before = clinic.latest_seq()
        # The relay's marks go through the writer on SQLite: let it go idle first, so
        # that the group the lock holds up is this test's.
        stack.wait_published()
        wait_writer(stack, writing=False, pending=0)
        lock = DatabaseWriteLock(stack, clinic.tenant)
        pool = ThreadPoolExecutor(4)
        try:
            first = pool.submit(http.post, "/events", json=balance(clinic.patient_id, 10))
            wait_writer(stack, writing=True, pending=0)  # its group waits for the lock
            second = pool.submit(http.post, "/events", json=balance(clinic.patient_id, 20))
            wait_writer(stack, pending=1)
            # 1 waiting + 2 > 2: refused at once, while the writer is still blocked.
            batch = {"events": [balance(clinic.patient_id, 30), balance(clinic.patient_id, 40)]}
            r = http.post("/events/batch", json=batch)
            assert r.status_code == 503, r.text
            assert r.json()["error"] == "overloaded"
            assert r.headers["Retry-After"] == "1"
            third = pool.submit(http.post, "/events", json=balance(clinic.patient_id, 50))
            wait_writer(stack, pending=2)
            r = http.post("/events", json=balance(clinic.patient_id, 60))
            assert r.status_code == 503, r.text
            assert not first.done()  # still waiting for the database: not answered early
        finally:
            lock.release()
        answers = [f.result(timeout=60) for f in (first, second, third)]
        pool.shutdown()
        assert [a.status_code for a in answers] == [202, 202, 202]
        events = replayed(stack, clinic, before)
        assert [e["data"]["balanceCents"] for e in events] == [10, 20, 50]
        assert [e["seq"] for e in events] == [before + 1, before + 2, before + 3]
        # Drained: the refused batch goes through when retried.
        assert http.post("/events/batch", json=batch).status_code == 202
    finally:
        stack.close()


def test_kill_9_while_the_writer_commits_keeps_every_acknowledged_event(
    private_stack: Stack,
) -> None:
    stack = private_stack
    clinic = Clinic.create(stack)
    service = stack.token(clinic.tenant, "billing-sync", "service")
    before = clinic.latest_seq()
    acknowledged: list[dict[str, Any]] = []
    lock = threading.Lock()
    stop = threading.Event()

    def publish(worker: int) -> None:
        with httpx.Client(base_url=stack.api.base_url, timeout=10) as http:
            http.headers["Authorization"] = f"Bearer {service}"
            for i in range(400):  # bounded: the kill ends it much earlier
                if stop.is_set():
                    return
                body = (
                    {"events": [balance(clinic.patient_id, worker * 1000 + i)] * 3}
                    if i % 5 == 0
                    else balance(clinic.patient_id, worker * 1000 + i)
                )
                try:
                    r = http.post("/events/batch" if i % 5 == 0 else "/events", json=body)
                except httpx.HTTPError:
                    return  # the api died mid-request: not acknowledged
                if r.status_code == 202:
                    with lock:
                        out = r.json()
                        acknowledged.extend(out.get("events", [out]))

    threads = [threading.Thread(target=publish, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while len(acknowledged) < 150 and time.monotonic() < deadline:
        time.sleep(0.01)
    stack.api.kill()  # kill -9 with requests in flight and groups being written
    stop.set()
    for t in threads:
        t.join(30)
    assert len(acknowledged) >= 150
    stack.api.start()
    events = replayed(stack, clinic, before)
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(before + 1, before + 1 + len(seqs)))  # gapless
    kept = {e["id"] for e in events}
    assert {a["id"] for a in acknowledged} <= kept  # nothing acknowledged was lost
    by_id = {e["id"]: e["seq"] for e in events}
    assert all(by_id[a["id"]] == a["seq"] for a in acknowledged)
    # And the relay of the restarted api publishes them: the tenant's retained
    # meta/seq reaches the newest seq.
    reader = stack.reader()
    try:
        reader.subscribe(f"tenants/{clinic.tenant}/meta/seq")
        newest = seqs[-1]
        reader.wait_for(lambda m: bool(m.payload) and m.json()["seq"] == newest, timeout=30)
    finally:
        reader.close()
