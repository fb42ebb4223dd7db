"""Database plumbing shared by the hub and the api: the declarative base, a UTC
datetime column type, and an engine factory that makes SQLite safe for concurrent
writers."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
from sqlalchemy import Connection, DateTime, Engine, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, sessionmaker
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.types import TypeDecorator

READ_ONLY = "hub_read_only"  # execution option: begin SQLite transactions deferred


class Base(DeclarativeBase):
    pass


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime on every backend (SQLite stores naive text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime written to the database")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine whose errors never echo bound values (they are PHI); for
    SQLite, WAL, foreign keys, full sync and BEGIN IMMEDIATE.

    pysqlite's deferred transactions let two writers both read and then fail to
    upgrade their lock; beginning every writing transaction IMMEDIATE serialises
    writers up front, waiting (busy timeout) instead of failing. Sessions made with
    ``make_sessionmaker(engine, read_only=True)`` begin deferred, so in WAL mode they
    read beside a writer instead of queueing behind it.
    """
    if url.startswith("sqlite"):
        connect_args = {"timeout": 30, "check_same_thread": False}
        engine = create_engine(url, connect_args=connect_args, hide_parameters=True, **kwargs)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=FULL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            read_only = conn.get_execution_options().get(READ_ONLY, False)
            conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_pre_ping=True, hide_parameters=True, **kwargs)


def placeholder(dialect: Dialect) -> str:
    """The driver's parameter marker: ``%s`` for psycopg, ``?`` for sqlite3."""
    return "%s" if dialect.paramstyle in ("format", "pyformat") else "?"


@contextlib.contextmanager
def driver_cursor(conn: Connection) -> Iterator[Any]:
    """A cursor of the driver itself, in ``conn``'s transaction, for fixed SQL on hot
    paths where SQLAlchemy's statement handling costs more than the query."""
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        yield cursor
    finally:
        cursor.close()


def make_sessionmaker(engine: Engine, *, read_only: bool = False) -> sessionmaker[OrmSession]:
    bind = engine.execution_options(**{READ_ONLY: True}) if read_only else engine
    return sessionmaker(bind, expire_on_commit=False)


# SQLite result codes and PostgreSQL SQLSTATE classes that mean "the database cannot
# be reached or is too busy right now": worth a 503 and a retry. Other operational
# errors (no such table, a deadlock, a cancelled statement) are not.
_SQLITE_AWAY = ("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_IOERR", "SQLITE_CANTOPEN", "SQLITE_FULL")
_PG_AWAY = ("08", "53", "57")  # connection exception, insufficient resources, operator


def database_away(exc: BaseException) -> bool:
    """Whether ``exc`` says the database is unreachable or busy (SQLAlchemy's wrapper
    or the driver's own error: the event writer runs fixed SQL on the driver)."""
    if isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        exc = exc.orig if exc.orig is not None else exc
    if isinstance(exc, sqlite3.OperationalError):
        name = getattr(exc, "sqlite_errorname", "") or ""
        return name.startswith(_SQLITE_AWAY)
    if isinstance(exc, psycopg.OperationalError):
        state = exc.sqlstate
        return state is None or state.startswith(_PG_AWAY)  # None: no server answer
    return False
