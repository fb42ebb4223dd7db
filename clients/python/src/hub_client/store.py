"""The durable half of the watermark: an SQLite file (stdlib sqlite3, WAL).

It holds the highest handled seq and the most recent event ids. The subscriber opens a
transaction before it hands an event out and commits it, with the new watermark, when
the partner's code asks for the next one. Writes the partner's code makes through
``connection`` in between belong to that same transaction: they and the watermark are
saved together or not at all.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Self

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS hub_client_state (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS hub_client_seen "
    "(n INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, seq INTEGER NOT NULL)",
    "INSERT OR IGNORE INTO hub_client_state (key, value) VALUES ('watermark', 0)",
)


class SqliteStore:
    """One partner's progress in an SQLite file. Not thread-safe: use it from the event
    loop's thread, as the subscriber does."""

    def __init__(
        self, path: str | os.PathLike[str], *, max_ids: int = 10_000, timeout: float = 30.0
    ) -> None:
        if max_ids < 1:
            raise ValueError("max_ids must be at least 1")
        self.path = Path(path)
        self.max_ids = max_ids
        # isolation_level=None: sqlite3 issues no implicit BEGIN; this class decides
        # where transactions start and end.
        self._conn = sqlite3.connect(self.path, isolation_level=None, timeout=timeout)
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a process crash loses nothing committed; a power loss
            # may roll back the last commits, watermark and handler writes together.
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("BEGIN IMMEDIATE")
            for statement in _SCHEMA:
                self._conn.execute(statement)
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.close()
            raise

    @property
    def connection(self) -> sqlite3.Connection:
        """The store's connection. Inside an ``async for`` body, writes made here commit
        atomically with the event's watermark. Do not call ``commit()``, ``rollback()``
        or ``with connection:`` on it there: the subscriber ends the transaction."""
        return self._conn

    @property
    def watermark(self) -> int:
        row = self._conn.execute(
            "SELECT value FROM hub_client_state WHERE key = 'watermark'"
        ).fetchone()
        return int(row[0])

    def recent_ids(self) -> list[str]:
        """The remembered ids, oldest first."""
        return [r[0] for r in self._conn.execute("SELECT id FROM hub_client_seen ORDER BY n")]

    @property
    def in_transaction(self) -> bool:
        return self._conn.in_transaction

    def begin(self) -> None:
        """Open the transaction an event's handler writes into. IMMEDIATE takes the write
        lock now, so the commit after the handler cannot fail on a busy database."""
        if not self._conn.in_transaction:
            self._conn.execute("BEGIN IMMEDIATE")

    def commit_event(self, event_id: str, seq: int) -> None:
        """Record ``event_id`` as handled, raise the watermark to ``seq`` and commit, with
        whatever the handler wrote since ``begin``."""
        self.begin()  # the handler may have ended the transaction itself
        try:
            self._record(event_id, seq)
            self._conn.execute("COMMIT")
        except BaseException:
            self.rollback()
            raise

    def _record(self, event_id: str, seq: int) -> None:
        self._conn.execute(
            "UPDATE hub_client_state SET value = max(value, ?) WHERE key = 'watermark'", (seq,)
        )
        cur = self._conn.execute(
            "INSERT OR IGNORE INTO hub_client_seen (id, seq) VALUES (?, ?)", (event_id, seq)
        )
        if cur.lastrowid:
            self._conn.execute(
                "DELETE FROM hub_client_seen WHERE n <= ?", (cur.lastrowid - self.max_ids,)
            )

    def rollback(self) -> None:
        """Forget the current event's transaction (its handler's writes too)."""
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")

    def advance(self, seq: int) -> None:
        """Raise the watermark to ``seq`` with no event: nothing granted lies below it."""
        self._write(
            "UPDATE hub_client_state SET value = max(value, ?) WHERE key = 'watermark'", seq
        )

    def reset(self, seq: int) -> None:
        """Set the watermark to ``seq`` (also lower) and forget the ids above it, so those
        events are handed out again."""
        if seq < 0:
            raise ValueError("seq must not be negative")
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._conn.execute(
                "UPDATE hub_client_state SET value = ? WHERE key = 'watermark'", (seq,)
            )
            self._conn.execute("DELETE FROM hub_client_seen WHERE seq > ?", (seq,))
            self._conn.execute("COMMIT")
        except BaseException:
            self.rollback()
            raise

    def _write(self, sql: str, seq: int) -> None:
        if self._conn.in_transaction:
            raise RuntimeError("an event's transaction is still open")
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._conn.execute(sql, (seq,))
            self._conn.execute("COMMIT")
        except BaseException:
            self.rollback()
            raise

    def close(self) -> None:
        self.rollback()
        self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
