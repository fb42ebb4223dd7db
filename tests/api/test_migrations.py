"""The Alembic migrations build exactly the schema the models declare, on every backend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import api.models  # noqa: F401 - registers the tables
import hub.credentials
import hub.outbox  # noqa: F401
from api.migrate import alembic_config, upgrade
from hub.db import Base
from tests.conftest import BACKENDS, _require_backend
from tests.support.stack import Database


@pytest.mark.parametrize("backend", BACKENDS)
def test_migrations_match_the_models(backend: str, tmp_path: Path) -> None:
    _require_backend(backend)
    db = Database(backend, tmp_path)  # runs the migrations
    engine = sa.create_engine(db.url)
    try:
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    finally:
        engine.dispose()
        db.drop()


@pytest.mark.parametrize("backend", BACKENDS)
def test_sessions_of_the_dynsec_design_end_at_the_token_migration(
    backend: str, tmp_path: Path
) -> None:
    _require_backend(backend)
    db = Database(backend, tmp_path)
    engine = sa.create_engine(db.url)
    try:
        downgrade(db.url, "0002")
        now = datetime.now(UTC)

        def stored(value: datetime | None) -> datetime | None:
            # As hub.db.UTCDateTime stores it: naive UTC text on SQLite.
            if value is None or backend != "sqlite":
                return value
            return value.replace(tzinfo=None)

        rows = [
            {"client_id": "t.u.live", "removed_at": None},
            {"client_id": "t.u.gone", "removed_at": now},
        ]
        with engine.begin() as conn:
            for row in rows:
                conn.execute(
                    sa.text(
                        "INSERT INTO broker_sessions (client_id, username, tenant, user_id,"
                        " created_at, expires_at, removed_at, ttl_seconds) VALUES"
                        " (:c, :u, 't', 'u', :now, :exp, :removed, 3600)"
                    ),
                    {
                        "c": row["client_id"],
                        "u": "s." + row["client_id"],
                        "now": stored(now),
                        "exp": stored(now + timedelta(hours=1)),
                        "removed": stored(row["removed_at"]),
                    },
                )
        upgrade(db.url)
        with engine.connect() as conn:
            revoked = dict(
                conn.execute(sa.text("SELECT client_id, revoked_at FROM broker_sessions")).all()
            )
            kinds = {k for (k,) in conn.execute(sa.text("SELECT kind FROM broker_sessions"))}
        assert revoked["t.u.live"] is not None  # its dynsec client is deleted at start
        assert revoked["t.u.gone"] is None  # it had left the broker: nothing to revoke
        assert kinds == {"session"}
    finally:
        engine.dispose()
        db.drop()


def downgrade(url: str, revision: str) -> None:
    from alembic import command

    command.downgrade(alembic_config(url), revision)
