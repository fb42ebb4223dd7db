"""The durable watermark and ids (hub_client.store), on real SQLite files."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from hub_client import SqliteStore


def test_a_new_store_starts_at_zero_in_wal_mode(tmp_path: Path) -> None:
    with SqliteStore(tmp_path / "p.db") as store:
        assert store.watermark == 0
        assert store.recent_ids() == []
        mode = store.connection.execute("PRAGMA journal_mode").fetchone()[0]
        assert mode == "wal"


def test_watermark_and_ids_survive_reopening(tmp_path: Path) -> None:
    with SqliteStore(tmp_path / "p.db") as store:
        store.begin()
        store.commit_event("e-3", 3)
        store.commit_event("e-8", 8)
    with SqliteStore(tmp_path / "p.db") as store:
        assert store.watermark == 8
        assert store.recent_ids() == ["e-3", "e-8"]


def test_the_watermark_never_goes_down_by_committing(tmp_path: Path) -> None:
    with SqliteStore(tmp_path / "p.db") as store:
        store.commit_event("e-9", 9)
        store.commit_event("e-4", 4)
        store.advance(2)
        assert store.watermark == 9
        store.advance(20)
        assert store.watermark == 20


def test_only_the_most_recent_ids_are_kept(tmp_path: Path) -> None:
    with SqliteStore(tmp_path / "p.db", max_ids=5) as store:
        for seq in range(1, 13):
            store.commit_event(f"e-{seq}", seq)
        assert store.recent_ids() == [f"e-{s}" for s in range(8, 13)]
        count = store.connection.execute("SELECT count(*) FROM hub_client_seen").fetchone()[0]
        assert count == 5


def test_handler_writes_commit_with_the_watermark(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    with SqliteStore(path) as store:
        store.connection.execute("CREATE TABLE handled (id TEXT PRIMARY KEY, seq INTEGER)")
        store.begin()
        store.connection.execute("INSERT INTO handled VALUES ('e-1', 1)")
        # Another connection (another process) sees neither the row nor the watermark yet.
        other = sqlite3.connect(path)
        assert other.execute("SELECT count(*) FROM handled").fetchone()[0] == 0
        store.commit_event("e-1", 1)
        assert other.execute("SELECT count(*) FROM handled").fetchone()[0] == 1
        wm = other.execute("SELECT value FROM hub_client_state WHERE key = 'watermark'")
        assert wm.fetchone()[0] == 1
        other.close()


def test_rolled_back_handler_writes_leave_the_watermark_alone(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    with SqliteStore(path) as store:
        store.connection.execute("CREATE TABLE handled (id TEXT PRIMARY KEY, seq INTEGER)")
        store.commit_event("e-1", 1)
        store.begin()
        store.connection.execute("INSERT INTO handled VALUES ('e-2', 2)")
        store.rollback()
    with SqliteStore(path) as store:
        assert store.watermark == 1
        assert store.connection.execute("SELECT count(*) FROM handled").fetchone()[0] == 0


def test_an_uncommitted_event_is_lost_when_the_process_dies(tmp_path: Path) -> None:
    """Closing without commit stands in for SIGKILL: SQLite drops the open transaction."""
    path = tmp_path / "p.db"
    store = SqliteStore(path)
    store.connection.execute("CREATE TABLE handled (id TEXT PRIMARY KEY, seq INTEGER)")
    store.begin()
    store.connection.execute("INSERT INTO handled VALUES ('e-1', 1)")
    store.connection.close()
    with SqliteStore(path) as again:
        assert again.watermark == 0
        assert again.connection.execute("SELECT count(*) FROM handled").fetchone()[0] == 0


def test_a_handler_that_committed_itself_still_gets_its_watermark(tmp_path: Path) -> None:
    with SqliteStore(tmp_path / "p.db") as store:
        store.begin()
        store.connection.commit()
        store.commit_event("e-1", 1)
        assert store.watermark == 1
        assert not store.in_transaction


def test_reset_moves_the_watermark_back_and_forgets_later_ids(tmp_path: Path) -> None:
    with SqliteStore(tmp_path / "p.db") as store:
        for seq in (2, 5, 9):
            store.commit_event(f"e-{seq}", seq)
        store.reset(4)
        assert store.watermark == 4
        assert store.recent_ids() == ["e-2"]
        with pytest.raises(ValueError, match="negative"):
            store.reset(-1)


def test_advance_refuses_to_run_inside_an_event_transaction(tmp_path: Path) -> None:
    with SqliteStore(tmp_path / "p.db") as store:
        store.begin()
        with pytest.raises(RuntimeError, match="still open"):
            store.advance(5)
