"""Which relay publishes when several api processes share one database.

Exactly one relay is *active* and the others are *standbys*. Each relay asks for
leadership while it is connected to the broker and gives it up when it loses that
connection, so a relay that cannot publish never keeps the others from doing so.
The active relay's process also runs the once-per-deployment duties (today's board,
pruning).

- ``Leadership``: one process only (a database no other process can reach, such as
  SQLite in memory). The relay leads whenever it is connected.
- ``FileLeadership`` (an SQLite file): an exclusive ``flock`` on a file beside the
  database. The kernel releases it when the process ends, even on ``kill -9``.
- ``PostgresLeadership``: a session-level advisory lock held on a dedicated
  connection; PostgreSQL releases it when that connection ends. In addition, every
  relay pass runs in one transaction that first takes a transaction-level advisory
  lock and commits its marks before releasing it. Passes therefore never overlap,
  even while leadership changes hands (an old leader that lost its lock connection
  mid-pass finishes or fails before the new leader's first pass starts), and the
  next pass never re-reads what the previous one marked.

A relay pass is a ``Turn``: fetch the oldest unpublished rows, then mark them
published. On PostgreSQL the marks are committed before the turn and its lock end. On
SQLite the relay hands them to the event writer's next transaction and awaits them
before its next publish, or before it gives leadership up (hub.relay).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, Literal, Self

import psycopg
from psycopg.rows import TupleRow
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from hub.outbox import UnpublishedRow, fetch_unpublished, mark_published
from hub.pgnotify import NotifyListener, conninfo

log = logging.getLogger("hub.leader")

Role = Literal["active", "standby"]

# Advisory lock keys (bigint), the same in every process of a deployment. Advisory
# locks are per database, so deployments on separate databases never collide.
LEADER_LOCK_KEY = int.from_bytes(b"hubrelay", "big")
PASS_LOCK_KEY = int.from_bytes(b"hubpass1", "big")
# How the dedicated connections appear in pg_stat_activity (unless the URL names them).
LEADER_APPLICATION_NAME = "hub-relay-leadership"
LISTENER_APPLICATION_NAME = "hub-outbox-listener"


class Turn:
    """One relay pass on short transactions of its own: read, then mark and commit.
    Used where leadership alone keeps passes apart (one process, a file lock)."""

    def __init__(
        self, sessions: sessionmaker[Session], read_sessions: sessionmaker[Session]
    ) -> None:
        self._sessions = sessions
        self._read_sessions = read_sessions

    def fetch(self, limit: int, after: int = 0) -> Sequence[UnpublishedRow]:
        with self._read_sessions() as session:
            return fetch_unpublished(session, limit, after=after)

    def mark(self, pks: Sequence[int], at: datetime) -> None:
        with self._sessions.begin() as session:
            mark_published(session, pks, at)

    def close(self) -> None:
        """End the turn (always called, also after a failure)."""


class _LockedTurn(Turn):
    """A PostgreSQL pass: one transaction that holds the pass lock from the fetch until
    the marks commit. If the pass fails, the rollback releases the lock and nothing is
    marked: the next pass, in whichever process, publishes those rows again."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def fetch(self, limit: int, after: int = 0) -> Sequence[UnpublishedRow]:
        return fetch_unpublished(self._session, limit, after=after)

    def mark(self, pks: Sequence[int], at: datetime) -> None:
        mark_published(self._session, pks, at)
        self._session.commit()

    def close(self) -> None:
        self._session.close()


class Leadership:
    """Leadership for a database that only this process uses: the relay leads while it
    is connected to the broker. Subclasses coordinate processes."""

    # Whether ``begin`` and ``Turn.close`` touch the database (run them in a thread).
    blocking_begin = False

    def __init__(
        self, *, sessions: sessionmaker[Session], read_sessions: sessionmaker[Session]
    ) -> None:
        self._sessions = sessions
        self._read_sessions = read_sessions
        self._leading = False
        self._error: str | None = None

    @property
    def leading(self) -> bool:
        return self._leading

    @property
    def role(self) -> Role:
        return "active" if self._leading else "standby"

    @property
    def error(self) -> str | None:
        """Why this process cannot take part in the election right now, if it cannot."""
        return self._error

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._leading = False

    async def refresh(self, *, eligible: bool) -> bool:
        """Take leadership if ``eligible`` and free, give it up if not ``eligible``, and
        check that it is still held; return whether this process leads."""
        self._leading = eligible
        return self._leading

    def begin(self) -> Turn | None:
        """Start a pass; None if another relay's pass is still running. Blocking where
        ``blocking_begin`` says so (run it in a thread then)."""
        return Turn(self._sessions, self._read_sessions)


class FileLeadership(Leadership):
    """Processes on one SQLite file: an exclusive ``flock`` on ``lock_file``."""

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        read_sessions: sessionmaker[Session],
        lock_file: Path,
    ) -> None:
        super().__init__(sessions=sessions, read_sessions=read_sessions)
        self._path = lock_file
        self._file: IO[bytes] | None = None

    async def __aexit__(self, *exc_info: object) -> None:
        self._release()
        if self._file is not None:
            self._file.close()
            self._file = None

    async def refresh(self, *, eligible: bool) -> bool:
        if not eligible:
            self._release()
            return False
        if self._leading:
            return True
        try:
            if self._file is None:
                # Held open while this process runs; opening a local file is quick.
                self._file = open(self._path, "a+b")  # noqa: SIM115, ASYNC230
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # another process's relay is active
        except OSError as exc:
            self._error = f"relay lock file {self._path}: {exc}"
            return False
        self._error = None
        self._leading = True
        log.info("relay is active (holds %s, pid %d)", self._path, os.getpid())
        return True

    def _release(self) -> None:
        if self._leading and self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            log.info("relay stands by")
        self._leading = False


class PostgresLeadership(Leadership):
    """Processes on one PostgreSQL database: a session-level advisory lock on a
    dedicated connection for leadership, a transaction-level one for every pass, and
    LISTEN on another dedicated connection so commits in any process wake the relay.
    """

    blocking_begin = True

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        read_sessions: sessionmaker[Session],
        engine: Engine,
        on_notify: Callable[[], None] | None = None,
        pass_timeout: float = 60.0,
        timeout: float = 10.0,
    ) -> None:
        super().__init__(sessions=sessions, read_sessions=read_sessions)
        self._conninfo = conninfo(engine.url, application_name=LEADER_APPLICATION_NAME)
        listen = conninfo(engine.url, application_name=LISTENER_APPLICATION_NAME)
        self._listener = NotifyListener(conninfo=listen, on_notify=on_notify) if on_notify else None
        self._conn: psycopg.AsyncConnection[TupleRow] | None = None
        self._pass_timeout = pass_timeout
        self._timeout = timeout

    @property
    def listening(self) -> bool:
        return self._listener is not None and self._listener.listening

    async def __aenter__(self) -> Self:
        if self._listener is not None:
            await self._listener.__aenter__()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._leading = False
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()  # releases the session lock
        if self._listener is not None:
            await self._listener.__aexit__(*exc_info)

    async def refresh(self, *, eligible: bool) -> bool:
        try:
            async with asyncio.timeout(self._timeout):
                await self._refresh(eligible)
            self._error = None
        except (psycopg.Error, OSError, TimeoutError) as exc:
            # The lock lived on that connection: whatever happened, it is gone or
            # will be once the server notices. Passes stay fenced by the pass lock.
            if self._leading:
                log.warning("relay lost its leadership connection: %s", exc)
            self._leading = False
            self._error = f"leadership connection: {exc or type(exc).__name__}"
            conn, self._conn = self._conn, None
            if conn is not None:
                with contextlib.suppress(psycopg.Error, OSError):
                    await conn.close()
        return self._leading

    async def _refresh(self, eligible: bool) -> None:
        conn = self._conn
        if conn is None or conn.closed:
            if not eligible:
                self._leading = False
                return
            conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
            self._conn = conn  # closed by the caller's error path if set-up fails
            # Server-side keepalives too, so the server frees the lock of a leader
            # whose machine vanished within about 25 s rather than hours.
            await conn.execute(
                "SELECT set_config('tcp_keepalives_idle', '10', false),"
                " set_config('tcp_keepalives_interval', '5', false),"
                " set_config('tcp_keepalives_count', '3', false)"
            )
            self._leading = False
        if self._leading and not eligible:
            await conn.execute("SELECT pg_advisory_unlock(%s)", (LEADER_LOCK_KEY,))
            self._leading = False
            log.info("relay stands by")
        elif self._leading:
            await conn.execute("SELECT 1")  # the lock lives as long as this connection
        elif eligible:
            cur = await conn.execute("SELECT pg_try_advisory_lock(%s)", (LEADER_LOCK_KEY,))
            row = await cur.fetchone()
            if row is not None and row[0] is True:
                self._leading = True
                log.info("relay is active (pid %d)", os.getpid())

    def begin(self) -> Turn | None:
        session = self._sessions()
        try:
            # A pass that hangs (a leader whose machine vanished mid-batch) must not
            # fence the others forever: the server ends it after pass_timeout.
            granted = session.execute(
                select(
                    func.set_config(
                        "idle_in_transaction_session_timeout",
                        f"{int(self._pass_timeout * 1000)}",
                        True,
                    ),
                    func.pg_try_advisory_xact_lock(PASS_LOCK_KEY),
                )
            ).one()[1]
        except BaseException:
            session.close()
            raise
        if not granted:
            session.close()
            return None
        return _LockedTurn(session)


def leadership_for(
    *,
    sessions: sessionmaker[Session],
    read_sessions: sessionmaker[Session],
    on_notify: Callable[[], None] | None = None,
) -> Leadership:
    """The leadership that fits the database behind ``sessions``. On PostgreSQL,
    ``on_notify`` is called whenever any process commits outbox rows."""
    engine = sessions.kw.get("bind")
    if not isinstance(engine, Engine):
        return Leadership(sessions=sessions, read_sessions=read_sessions)
    url = engine.url
    if url.get_backend_name() == "postgresql":
        return PostgresLeadership(
            sessions=sessions, read_sessions=read_sessions, engine=engine, on_notify=on_notify
        )
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        lock_file = Path(url.database).with_name(Path(url.database).name + ".relay-lock")
        return FileLeadership(sessions=sessions, read_sessions=read_sessions, lock_file=lock_file)
    return Leadership(sessions=sessions, read_sessions=read_sessions)
