"""Group commit for events that need nothing but their own rows (``POST /events`` and
its batch form).

Each request used to run its own transaction: a seq update, an ORM insert and a
commit, with SQLite writers queueing in its busy handler and PostgreSQL paying a
round trip per statement. Here one thread owns one connection and writes whatever
is waiting as one transaction: one query that checks every named patient exists,
one upsert that reserves each tenant's seqs (tenants locked in sorted order, so two
writers of different processes cannot deadlock), one multi-row insert, one commit
(one fsync on SQLite). A request's events all commit or none do, and it is answered
only after the commit: an acknowledged event survives kill -9.

A group that fails as a whole for another reason than the database being away (then
every request of it fails at once: 503) is retried one request at a time, so one
request's failure is never another's. Past ``max_pending``
waiting events, ``submit`` refuses at once (``WriterOverloadedError``: the api's 503)
instead of letting latency grow without bound.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from queue import Empty, SimpleQueue
from typing import Any

from sqlalchemy import Connection, Engine

from hub import metrics
from hub.db import database_away, driver_cursor, placeholder, utcnow
from hub.errors import UnknownPatientsError, WriterClosedError, WriterOverloadedError
from hub.outbox import (
    EmittedEvent,
    OutboxEvent,
    PreparedEvent,
    TenantSequence,
    event_row,
    notify_committed,
)
from hub.pgnotify import notify_sql

log = logging.getLogger("hub.writer")

# (tenant, patient id) pairs -> the subset that exists, read on the writer's connection.
PatientCheck = Callable[[Connection, Collection[tuple[str, str]]], set[tuple[str, str]]]


@dataclass(slots=True)
class _Job:
    events: Sequence[PreparedEvent]
    future: Future[list[EmittedEvent]] = field(default_factory=Future)
    # Fixed at submission: a retry after a COMMIT whose outcome is unknown then fails
    # on the unique id instead of publishing the same events twice under new ids.
    ids: list[str] = field(default_factory=list)
    # A relay's marks instead of events: these pks were published at ``marked_at``.
    marks: Sequence[int] = ()
    marked_at: datetime | None = None


class EventWriter:
    """Writes prepared events in groups on a thread of its own. Start with ``start``;
    ``close`` writes what was submitted, then stops."""

    def __init__(
        self,
        engine: Engine,
        *,
        known_patients: PatientCheck,
        max_pending: int = 2000,
        max_group: int = 2000,
    ) -> None:
        self._engine = engine
        self._known_patients = known_patients
        self._max_pending = max_pending
        self._max_group = max_group
        self._queue: SimpleQueue[_Job | None] = SimpleQueue()
        self._lock = threading.Lock()
        self._pending = 0
        self._closed = False
        self._thread: threading.Thread | None = None
        self._conn: Connection | None = None
        self._postgres = engine.dialect.name == "postgresql"
        self._sql = _Statements(placeholder(engine.dialect))
        # The column type's own conversion (UTC; naive text on SQLite), as the ORM does.
        time_type = OutboxEvent.__table__.c.occurred_at.type.dialect_impl(engine.dialect)
        processor = time_type.bind_processor(engine.dialect)
        self._bind_time: Callable[[Any], Any] = processor or (lambda value: value)
        self.groups = 0  # transactions committed, for tests and figures
        self.written = 0  # events committed
        self.writing = False  # a group is being written (waiting for the database, maybe)

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the writer is already running")
        self._thread = threading.Thread(target=self._run, name="hub-event-writer", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Refuse new events, write those already submitted, stop the thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(None)
        if self._thread is not None:
            self._thread.join()
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @property
    def pending(self) -> int:
        """Events submitted and not yet taken into a group."""
        return self._pending

    @property
    def max_pending(self) -> int:
        return self._max_pending

    def submit(self, events: Sequence[PreparedEvent]) -> Future[list[EmittedEvent]]:
        """Queue ``events`` to commit together; the future holds them with their seqs,
        in the order given. A request larger than ``max_pending`` is taken when
        nothing else waits, so a big batch is slow rather than impossible."""
        if not events:
            raise ValueError("no events to write")
        job = _Job(events, ids=[str(uuid.uuid4()) for _ in events])
        with self._lock:  # so that nothing is queued after close()'s sentinel
            if self._closed:
                raise WriterClosedError("the event writer has stopped")
            if self._pending and self._pending + len(events) > self._max_pending:
                raise WriterOverloadedError(self._pending)
            self._pending += len(events)
            self._queue.put(job)
        return job.future

    async def write(self, events: Sequence[PreparedEvent]) -> list[EmittedEvent]:
        """``submit`` for a coroutine. Cancelling the wait drops a request not yet taken
        into a group; one already taken is written all the same."""
        return await asyncio.wrap_future(self.submit(events))

    def submit_marks(self, pks: Sequence[int], at: datetime) -> Future[list[EmittedEvent]]:
        """Mark outbox rows published in the next group's transaction (the relay's
        marks). On SQLite this keeps the relay from competing with the writer for the
        database's one write lock, whose busy handler sleeps in growing steps; and
        one commit (one fsync) covers both. Never refused for load."""
        job = _Job((), marks=list(pks), marked_at=at)
        with self._lock:
            if self._closed:
                raise WriterClosedError("the event writer has stopped")
            self._queue.put(job)
        return job.future

    # --- the writer thread ---

    @property
    def alive(self) -> bool:
        """The writer thread runs (for /readyz)."""
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            jobs, count = [first], len(first.events)
            while count < self._max_group:
                try:
                    job = self._queue.get_nowait()
                except Empty:
                    break
                if job is None:
                    stopping = True
                    break
                jobs.append(job)
                count += len(job.events)
            with self._lock:
                self._pending -= count
            # A request whose caller stopped waiting before its group began (the
            # awaiting task was cancelled) is not written; one taken is written anyway.
            # Marks are never dropped: the relay counts on them landing.
            jobs = [j for j in jobs if j.future.set_running_or_notify_cancel() or j.marks]
            if not jobs:
                continue
            self.writing = True
            try:
                self._commit(jobs)
            except BaseException as exc:  # a bug: answer everyone, keep the thread
                log.exception("event writer: a group failed unexpectedly")
                for job in jobs:
                    self._settle(job, exc if isinstance(exc, Exception) else RuntimeError(exc))
            finally:
                self.writing = False

    def _commit(self, jobs: list[_Job]) -> None:
        try:
            results = self._write_group(jobs)
        except Exception as exc:
            if len(jobs) == 1 or database_away(exc):
                # The database is away or locked: one by one would only wait again.
                for job in jobs:
                    self._settle(job, exc)
                return
            log.warning("a group of %d requests failed; writing them one by one", len(jobs))
            for job in jobs:
                try:
                    results = self._write_group([job])
                except Exception as single:
                    self._settle(job, single)
                else:
                    self._settle(job, results[0])
            return
        for job, result in zip(jobs, results, strict=True):
            self._settle(job, result)

    @staticmethod
    def _settle(job: _Job, result: list[EmittedEvent] | Exception) -> None:
        if job.future.done():  # settled already (a group that failed after a retry)
            return
        if isinstance(result, Exception):
            job.future.set_exception(result)
        else:
            job.future.set_result(result)

    def _connection(self) -> Connection:
        if self._conn is None or self._conn.closed or self._conn.invalidated:
            if self._conn is not None:
                self._conn.close()
            self._conn = self._engine.connect()
        return self._conn

    def _write_group(self, jobs: list[_Job]) -> list[list[EmittedEvent] | Exception]:
        conn = self._connection()
        try:
            with conn.begin():
                results = self._insert(conn, jobs)
        except Exception:
            # A broken connection is replaced before the next group.
            conn.invalidate()
            raise
        written = sum(len(r) for r in results if not isinstance(r, Exception))
        if written:
            self.groups += 1
            self.written += written
            metrics.count_committed(
                e.type for r in results if not isinstance(r, Exception) for e in r
            )
            notify_committed()
        return results

    def _insert(self, conn: Connection, jobs: list[_Job]) -> list[list[EmittedEvent] | Exception]:
        # Fixed SQL on the driver's cursor: compiling it through SQLAlchemy for every
        # group cost more than running it.
        with driver_cursor(conn) as cursor:
            return self._insert_with(cursor, conn, jobs)

    def _insert_with(
        self, cursor: Any, conn: Connection, jobs: list[_Job]
    ) -> list[list[EmittedEvent] | Exception]:
        sql = self._sql
        for job in jobs:
            if job.marks:
                at = self._bind_time(job.marked_at)
                cursor.executemany(sql.mark, [(at, pk) for pk in job.marks])
        pairs = {(e.tenant, e.patient_id) for job in jobs for e in job.events}
        known = self._known_patients(conn, pairs) if pairs else set()
        results: list[list[EmittedEvent] | Exception] = []
        accepted: list[tuple[int, _Job]] = []
        for i, job in enumerate(jobs):
            if not job.events:  # marks
                results.append([])
                continue
            missing = sorted(
                {e.patient_id for e in job.events if (e.tenant, e.patient_id) not in known}
            )
            if missing:
                results.append(UnknownPatientsError(missing))
            else:
                results.append([])
                accepted.append((i, job))
        if not accepted:
            return results
        counts = Counter(e.tenant for _, job in accepted for e in job.events)
        next_seq = {t: last - counts[t] + 1 for t, last in self._reserve(cursor, counts).items()}
        now = utcnow()
        bound_now = self._bind_time(now)
        rows = []
        for i, job in accepted:
            emitted = results[i]
            assert isinstance(emitted, list)
            for event, event_id in zip(job.events, job.ids, strict=True):
                seq = next_seq[event.tenant]
                next_seq[event.tenant] = seq + 1
                envelope, row = event_row(event, seq=seq, occurred_at=now, event_id=event_id)
                rows.append(
                    tuple(bound_now if c == "occurred_at" else row[c] for c in _EVENT_COLUMNS)
                )
                emitted.append(
                    EmittedEvent(row["id"], event.tenant, seq, event.type, event.topic, envelope)
                )
        cursor.executemany(sql.insert, rows)
        if self._postgres:
            # Other processes' relays LISTEN; delivered only if this commits.
            cursor.execute(notify_sql())
        return results

    def _reserve(self, cursor: Any, counts: Counter[str]) -> dict[str, int]:
        """Add each tenant's count to its last seq in one statement; the new last seqs.
        Rows are locked in the order of the VALUES, sorted, as every writer does."""
        tenants = sorted(counts)
        cursor.execute(
            self._sql.reserve(len(tenants)), [v for t in tenants for v in (t, counts[t])]
        )
        return {tenant: int(last) for tenant, last in cursor.fetchall()}


_EVENT_COLUMNS = (
    "id",
    "tenant",
    "seq",
    "type",
    "actor",
    "patient_id",
    "entity_id",
    "occurred_at",
    "topic",
    "payload",
)


class _Statements:
    """The writer's SQL in the driver's parameter style (``?`` or ``%s``). Built from
    constant table and column names and placeholders only, never from values."""

    def __init__(self, mark: str) -> None:
        self._p = mark
        cols = ", ".join(_EVENT_COLUMNS)
        self.insert = (
            f"INSERT INTO {OutboxEvent.__tablename__} ({cols}) "  # noqa: S608
            f"VALUES ({', '.join([mark] * len(_EVENT_COLUMNS))})"
        )
        self.mark = (
            f"UPDATE {OutboxEvent.__tablename__} SET published_at = {mark} "  # noqa: S608
            f"WHERE pk = {mark} AND published_at IS NULL"
        )

    def reserve(self, tenants: int) -> str:
        table = TenantSequence.__tablename__
        values = ", ".join([f"({self._p}, {self._p})"] * tenants)
        return (
            f"INSERT INTO {table} (tenant, last_seq) VALUES {values} "  # noqa: S608
            f"ON CONFLICT (tenant) DO UPDATE SET last_seq = {table}.last_seq + excluded.last_seq "
            "RETURNING tenant, last_seq"
        )
