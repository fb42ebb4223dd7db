"""The Alembic migrations build exactly the schema the models declare, on every backend."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import api.models  # noqa: F401 - registers the tables
import hub.credentials
import hub.outbox  # noqa: F401
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
