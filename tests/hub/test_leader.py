"""Relay leadership on a real database: one leader at a time, handed over when the
leader steps down, leaves or loses its connection; on PostgreSQL, relay passes never
overlap, whoever leads."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from hub.db import make_engine, make_sessionmaker
from hub.leader import Leadership, leadership_for
from tests.conftest import BACKENDS, _require_backend
from tests.support.stack import Database


@pytest.fixture(params=BACKENDS)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    _require_backend(request.param)
    db = Database(request.param, tmp_path)
    yield db
    db.drop()


@pytest.fixture
def postgres(tmp_path: Path) -> Iterator[Database]:
    _require_backend("postgresql")
    db = Database("postgresql", tmp_path)
    yield db
    db.drop()


class Processes:
    """Leaderships as separate processes would hold them: an engine each."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engines: list[sa.Engine] = []

    def new(self) -> Leadership:
        engine = make_engine(self.url)
        self.engines.append(engine)
        return leadership_for(
            sessions=make_sessionmaker(engine),
            read_sessions=make_sessionmaker(engine, read_only=True),
        )

    def close(self) -> None:
        for engine in self.engines:
            engine.dispose()


@pytest.fixture
def processes(database: Database) -> Iterator[Processes]:
    p = Processes(database.url)
    yield p
    p.close()


@pytest.fixture
def pg_processes(postgres: Database) -> Iterator[Processes]:
    p = Processes(postgres.url)
    yield p
    p.close()


async def test_one_leader_at_a_time_handed_over_when_it_steps_down_or_leaves(
    processes: Processes,
) -> None:
    a, b = processes.new(), processes.new()
    async with a, b:
        assert await a.refresh(eligible=True)
        assert not await b.refresh(eligible=True)
        assert await a.refresh(eligible=True)  # it keeps leading
        assert (a.role, b.role) == ("active", "standby")
        # A relay that lost the broker steps down; the other takes over.
        assert not await a.refresh(eligible=False)
        assert await b.refresh(eligible=True)
        assert not await a.refresh(eligible=True)
        assert (a.role, b.role) == ("standby", "active")
        assert a.error is None
        assert b.error is None
    # Leaving (a process that stops or dies) frees leadership for the next one.
    c = processes.new()
    async with c:
        assert await c.refresh(eligible=True)


async def test_postgres_passes_never_overlap_whoever_leads(pg_processes: Processes) -> None:
    a, b = pg_processes.new(), pg_processes.new()
    async with a, b:
        turn = await asyncio.to_thread(a.begin)
        assert turn is not None
        # Even a leader cannot start a pass while another one still runs (an old
        # leader finishing the batch it began).
        assert await asyncio.to_thread(b.begin) is None
        await asyncio.to_thread(turn.mark, [], datetime.now(UTC))  # marks commit the pass
        follow = await asyncio.to_thread(b.begin)
        assert follow is not None
        follow.close()


async def test_postgres_leadership_ends_with_its_connection(pg_processes: Processes) -> None:
    a, b = pg_processes.new(), pg_processes.new()
    async with a, b:
        assert await a.refresh(eligible=True)
        engine = sa.create_engine(pg_processes.url)
        try:
            with engine.begin() as conn:
                # The server ends the leader's connection (as when its machine vanished).
                ended = conn.execute(
                    sa.text(
                        "SELECT pg_terminate_backend(pid) FROM pg_locks"
                        " WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid()"
                        " AND database = (SELECT oid FROM pg_database"
                        " WHERE datname = current_database())"
                    )
                ).all()
                assert ended == [(True,)]
        finally:
            engine.dispose()

        # PostgreSQL frees the lock as the connection ends: the standby takes over.
        for _ in range(300):
            if await b.refresh(eligible=True):
                break
            await asyncio.sleep(0.05)
        assert b.role == "active"
        # The old leader finds out at its next check and stands by.
        assert not await a.refresh(eligible=True)
        assert a.role == "standby"
        assert not await a.refresh(eligible=True)  # reconnected; the lock is b's
        assert a.error is None
