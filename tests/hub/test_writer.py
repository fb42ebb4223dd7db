"""The group-commit writer (hub.writer) against real databases: requests that wait
together commit together, each keeps its own outcome, seqs stay gapless beside the
ORM path, and a full queue refuses at once."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import Future
from datetime import date
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy import Connection, Engine, select

from api.models import Patient
from api.runtime import known_patients
from hub.db import database_away, make_engine, make_sessionmaker, utcnow
from hub.errors import UnknownPatientsError, WriterClosedError, WriterOverloadedError
from hub.outbox import EmittedEvent, OutboxEvent, PreparedEvent, emit, prepare_event
from hub.writer import EventWriter, PatientCheck
from tests.conftest import BACKENDS, _require_backend
from tests.support.stack import Database

TENANTS = ("acme", "birch", "cedar")


@pytest.fixture(params=BACKENDS)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    _require_backend(request.param)
    db = Database(request.param, tmp_path)
    engine = make_engine(db.url, **({} if request.param == "sqlite" else {"pool_size": 10}))
    with make_sessionmaker(engine).begin() as s:
        for tenant in TENANTS:
            for n in (1, 2):
                s.add(
                    Patient(
                        tenant=tenant,
                        id=f"p-{n}",
                        first_name="Ada",
                        last_name="Lovelace",
                        date_of_birth=date(1980, 1, 1),
                        created_at=utcnow(),
                        updated_at=utcnow(),
                    )
                )
    yield engine
    engine.dispose()
    db.drop()


def event(tenant: str = "acme", patient: str = "p-1", cents: int = 100) -> PreparedEvent:
    return prepare_event(
        tenant=tenant,
        event_type="patient:balance_changed",
        actor="svc-1",
        patient_id=patient,
        entity_id=patient,
        data={
            "patientId": patient,
            "balanceCents": cents,
            "previousBalanceCents": 0,
            "reason": "copay",
        },
    )


class WriteLock:
    """Holds the database's write lock from another connection, so the writer's next
    group waits and what is submitted meanwhile queues behind it (deterministic
    grouping, on SQLite by BEGIN IMMEDIATE, on PostgreSQL by the tenants' seq rows)."""

    def __init__(self, engine: Engine) -> None:
        self._conn = engine.connect()
        self._tx = self._conn.begin()
        if engine.dialect.name == "postgresql":
            self._conn.execute(
                sa.text("SELECT * FROM tenant_sequences WHERE tenant = ANY(:t) FOR UPDATE"),
                {"t": list(TENANTS)},
            )

        _HELD.append(self)

    def release(self) -> None:
        if self._conn.closed:
            return
        self._tx.rollback()
        self._conn.close()


_HELD: list[WriteLock] = []


@contextlib.contextmanager
def started(engine: Engine, **options: Any) -> Iterator[EventWriter]:
    """A running writer; on the way out, locks a failed test still holds are released
    first, so that closing the writer cannot wait on them forever."""
    writer = EventWriter(engine, **options)
    writer.start()
    try:
        yield writer
    finally:
        while _HELD:
            _HELD.pop().release()
        writer.close()


def seed_sequences(engine: Engine) -> None:
    """Seq rows exist (PostgreSQL's FOR UPDATE only locks rows that do)."""
    with make_sessionmaker(engine).begin() as s:
        for tenant in TENANTS:
            emit(
                s,
                tenant=tenant,
                event_type="patient:balance_changed",
                actor="seed",
                patient_id="p-1",
                entity_id="p-1",
                data={
                    "patientId": "p-1",
                    "balanceCents": 0,
                    "previousBalanceCents": 0,
                    "reason": "seed",
                },
            )


def wait_taken(writer: EventWriter, pending: int) -> None:
    """Until the writer has taken its first group (what remains is ``pending``)."""
    for _ in range(500):
        if writer.pending == pending and writer.writing:
            return
        threading.Event().wait(0.01)
    raise AssertionError(f"pending stayed {writer.pending}")


def events_in_db(engine: Engine) -> list[tuple[str, int, str]]:
    with make_sessionmaker(engine)() as s:
        rows = s.execute(
            select(OutboxEvent.tenant, OutboxEvent.seq, OutboxEvent.payload).order_by(
                OutboxEvent.pk
            )
        ).all()
    return [(t, int(seq), payload) for t, seq, payload in rows]


def test_requests_that_wait_together_commit_as_one_group(engine: Engine) -> None:
    seed_sequences(engine)
    with started(engine, known_patients=known_patients) as writer:
        lock = WriteLock(engine)
        first = writer.submit([event("acme")])
        wait_taken(writer, 0)  # the first group waits for the lock
        later = [writer.submit([event(TENANTS[i % 3], cents=i)]) for i in range(9)]
        lock.release()
        results = [f.result(timeout=30) for f in [first, *later]]
        assert writer.groups == 2  # the first alone, then the nine queued together
        assert writer.written == 10
    # Each tenant's seqs continue gapless from the seeded 1, in submission order.
    by_tenant: dict[str, list[int]] = {}
    for (emitted,) in results:
        by_tenant.setdefault(emitted.tenant, []).append(emitted.seq)
    for tenant, seqs in by_tenant.items():
        assert seqs == list(range(2, 2 + len(seqs))), tenant
    stored = events_in_db(engine)
    for tenant in TENANTS:
        assert [s for t, s, _ in stored if t == tenant] == list(
            range(1, 2 + len(by_tenant[tenant]))
        )


def test_a_request_naming_an_unknown_patient_fails_alone_and_writes_nothing(
    engine: Engine,
) -> None:
    seed_sequences(engine)
    with started(engine, known_patients=known_patients) as writer:
        lock = WriteLock(engine)
        blocker = writer.submit([event("acme")])
        wait_taken(writer, 0)
        good = writer.submit([event("acme", cents=1), event("birch", cents=2)])
        bad = writer.submit([event("acme", cents=3), event("acme", patient="p-404")])
        foreign = writer.submit([event("birch", patient="p-404")])
        after = writer.submit([event("acme", cents=4)])
        lock.release()
        blocker.result(timeout=30)
        assert [(e.tenant, e.seq) for e in good.result(timeout=30)] == [("acme", 3), ("birch", 2)]
        with pytest.raises(UnknownPatientsError) as err:
            bad.result(timeout=30)
        assert err.value.patient_ids == ["p-404"]
        with pytest.raises(UnknownPatientsError):
            foreign.result(timeout=30)
        assert [(e.tenant, e.seq) for e in after.result(timeout=30)] == [("acme", 4)]
    stored = events_in_db(engine)
    assert [(t, s) for t, s, _ in stored if t == "acme"] == [("acme", n) for n in range(1, 5)]
    assert '"balanceCents":3' not in "".join(p for _, _, p in stored)


def test_another_tenants_patient_is_unknown(engine: Engine) -> None:
    """p-1 exists in acme, not in a tenant that has no patients at all."""
    with (
        started(engine, known_patients=known_patients) as writer,
        pytest.raises(UnknownPatientsError),
    ):
        writer.submit([event("dune", patient="p-1")]).result(timeout=30)
    assert events_in_db(engine) == []


def test_a_group_that_fails_is_retried_request_by_request(engine: Engine) -> None:
    """A failure of the whole transaction (here the patient check raising for one
    request's patient) must not fail the other requests of its group."""
    seed_sequences(engine)

    def flaky(conn: Connection, pairs: Collection[tuple[str, str]]) -> set[tuple[str, str]]:
        if ("acme", "p-2") in pairs:
            raise RuntimeError("simulated failure")
        return known_patients(conn, pairs)

    check: PatientCheck = flaky
    with started(engine, known_patients=check) as writer:
        lock = WriteLock(engine)
        blocker = writer.submit([event("acme")])
        wait_taken(writer, 0)
        ok1 = writer.submit([event("birch")])
        doomed = writer.submit([event("acme", patient="p-2")])
        ok2 = writer.submit([event("cedar")])
        lock.release()
        blocker.result(timeout=30)
        assert ok1.result(timeout=30)[0].seq == 2
        assert ok2.result(timeout=30)[0].seq == 2
        with pytest.raises(RuntimeError):
            doomed.result(timeout=30)
    assert len(events_in_db(engine)) == 3 + 3


def test_a_database_that_is_away_fails_the_group_at_once_and_the_writer_recovers(
    engine: Engine,
) -> None:
    """A connection-level error is not retried request by request (each would wait for
    the database again); the requests fail, the thread lives on, later ones succeed."""
    seed_sequences(engine)
    away = threading.Event()
    away.set()

    calls = 0

    def down(conn: Connection, pairs: Collection[tuple[str, str]]) -> set[tuple[str, str]]:
        nonlocal calls
        calls += 1
        if away.is_set():
            raise sa.exc.OperationalError("SELECT", {}, psycopg.OperationalError("unreachable"))
        return known_patients(conn, pairs)

    with started(engine, known_patients=down) as writer:
        queued = [writer.submit([event(t)]) for t in TENANTS * 3]
        for f in queued:
            with pytest.raises(sa.exc.OperationalError):
                f.result(timeout=30)
        assert writer.groups == 0
        assert calls < len(queued)  # whole groups failed, not request after request
        away.clear()
        assert writer.submit([event("acme")]).result(timeout=30)[0].seq == 2
        assert writer.alive


def test_a_cancelled_wait_neither_kills_the_writer_nor_loses_the_group(engine: Engine) -> None:
    """A caller that stops waiting (its task cancelled, e.g. at shutdown): a request
    already taken into a group is written with it, one still queued is dropped, and
    the writer goes on answering everyone else."""
    seed_sequences(engine)

    async def scenario(writer: EventWriter) -> tuple[list[EmittedEvent], list[EmittedEvent]]:
        lock = WriteLock(engine)
        try:
            taken = asyncio.create_task(writer.write([event("acme", cents=1)]))
            await asyncio.sleep(0)  # the task submits
            await asyncio.to_thread(wait_taken, writer, 0)
            queued = asyncio.create_task(writer.write([event("acme", cents=2)]))
            neighbour = asyncio.create_task(writer.write([event("birch", cents=3)]))
            await asyncio.sleep(0)
            assert writer.pending == 2  # both wait behind the blocked group
            taken.cancel()
            queued.cancel()
            await asyncio.sleep(0.1)
        finally:
            lock.release()
        after = await writer.write([event("cedar", cents=4)])
        return await neighbour, after

    with started(engine, known_patients=known_patients) as writer:
        neighbour, after = asyncio.run(scenario(writer))
        assert writer.alive
    assert [(e.tenant, e.seq) for e in neighbour] == [("birch", 2)]
    assert [(e.tenant, e.seq) for e in after] == [("cedar", 2)]
    stored = events_in_db(engine)
    payloads = "".join(p for _, _, p in stored)
    assert '"balanceCents":1,' in payloads  # taken: written anyway
    assert '"balanceCents":2,' not in payloads  # still queued: dropped
    assert [s for t, s, _ in stored if t == "acme"] == [1, 2]


def test_a_full_queue_refuses_at_once_and_what_was_accepted_commits(engine: Engine) -> None:
    seed_sequences(engine)
    with started(engine, known_patients=known_patients, max_pending=5) as writer:
        lock = WriteLock(engine)
        blocker = writer.submit([event("acme")])
        wait_taken(writer, 0)
        accepted = [writer.submit([event("birch"), event("birch")]) for _ in range(2)]
        accepted.append(writer.submit([event("cedar")]))  # 5 waiting
        with pytest.raises(WriterOverloadedError):
            writer.submit([event("cedar")])
        lock.release()
        for f in [blocker, *accepted]:
            f.result(timeout=30)
        # Once drained, it accepts again; a request bigger than the bound is taken
        # when nothing waits.
        big = writer.submit([event("acme", cents=i) for i in range(8)])
        assert [e.seq for e in big.result(timeout=30)] == list(range(3, 11))


def test_close_writes_what_was_submitted_then_refuses(engine: Engine) -> None:
    writer = EventWriter(engine, known_patients=known_patients)
    writer.start()
    futures: list[Future[list[EmittedEvent]]] = [
        writer.submit([event(TENANTS[i % 3], cents=i)]) for i in range(30)
    ]
    writer.close()
    assert all(f.done() for f in futures)
    assert sorted(e.seq for f in futures for e in f.result() if e.tenant == "acme") == list(
        range(1, 11)
    )
    with pytest.raises(WriterClosedError):
        writer.submit([event()])


def test_writer_and_orm_path_share_gapless_seqs_under_concurrency(engine: Engine) -> None:
    """Domain routes still emit through the ORM in their own transactions; with the
    writer committing beside them, every tenant's seqs are 1..n without a gap or a
    duplicate, and pk order is seq order."""
    sessions = make_sessionmaker(engine)
    errors: list[BaseException] = []

    def orm_writer(n: int) -> None:
        try:
            for i in range(15):
                with sessions.begin() as s:
                    emit(
                        s,
                        tenant=TENANTS[(n + i) % 3],
                        event_type="patient:balance_changed",
                        actor="route",
                        patient_id="p-2",
                        entity_id="p-2",
                        data={
                            "patientId": "p-2",
                            "balanceCents": i,
                            "previousBalanceCents": 0,
                            "reason": "copay",
                        },
                    )
        except BaseException as exc:
            errors.append(exc)

    def submitter(writer: EventWriter, n: int) -> Callable[[], None]:
        def run() -> None:
            try:
                for i in range(15):
                    writer.submit([event(TENANTS[(n + i) % 3]), event(TENANTS[i % 3])]).result(30)
            except BaseException as exc:
                errors.append(exc)

        return run

    with started(engine, known_patients=known_patients) as writer:
        threads = [threading.Thread(target=orm_writer, args=(n,)) for n in range(3)]
        threads += [threading.Thread(target=submitter(writer, n)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
    stored = events_in_db(engine)
    assert len(stored) == 3 * 15 + 4 * 15 * 2
    for tenant in TENANTS:
        seqs = [s for t, s, _ in stored if t == tenant]
        assert seqs == list(range(1, len(seqs) + 1)), tenant


def test_only_an_unreachable_or_busy_database_counts_as_away(tmp_path: Path) -> None:
    """503 and no retry one by one for these; a bug or a deadlock stays what it is."""
    path = tmp_path / "busy.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    other = sqlite3.connect(path, isolation_level=None, timeout=0)
    with pytest.raises(sqlite3.OperationalError) as busy:
        other.execute("BEGIN IMMEDIATE")
    with pytest.raises(sqlite3.OperationalError) as missing:
        other.execute("SELECT * FROM no_such_table")
    holder.close()
    other.close()
    assert database_away(busy.value)
    assert database_away(sa.exc.OperationalError("BEGIN", {}, busy.value))
    assert not database_away(missing.value)
    assert database_away(psycopg.OperationalError("connection refused"))
    assert not database_away(psycopg.errors.DeadlockDetected("deadlock"))
    assert not database_away(ValueError("not a database error"))
