"""What the operator's commands share: exit codes, settings, the database, tenants.

The commands run beside ``hub up`` on the same ``HUB_*`` settings (data directory,
database, broker). Data goes to stdout, everything else to stderr, and nothing
about an event's contents is ever logged.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

from pydantic import ValidationError
from sqlalchemy import Engine, exists, select
from sqlalchemy.orm import Session, sessionmaker

from api.settings import Settings
from hub.credentials import BrokerSession
from hub.db import make_engine, make_sessionmaker
from hub.outbox import TenantSequence
from hub.topics import validate_tenant

OK = 0
FAILED = 1  # a check failed, or nothing was found where something was required
USAGE = 2  # a usage or configuration error


class CommandError(Exception):
    """Ends a command with a message on stderr and an exit status."""

    def __init__(self, message: str, status: int = USAGE) -> None:
        super().__init__(message)
        self.status = status


def fail(message: str, status: int = USAGE) -> NoReturn:
    raise CommandError(message, status)


def note(prog: str, message: str) -> None:
    """Progress and outcomes for the person at the terminal: stderr, never stdout."""
    print(f"{prog}: {message}", file=sys.stderr, flush=True)


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        fail(f"configuration: {problems}")


def sqlite_file(url: str) -> Path | None:
    """The file of an SQLite URL (None for other databases and in-memory SQLite)."""
    if not url.startswith("sqlite"):
        return None
    path = url.split(":///", 1)[1].split("?", 1)[0] if ":///" in url else ""
    return Path(path) if path and path != ":memory:" else None


def database_url(settings: Settings) -> str:
    """The api's database; refuses to create an SQLite file that is not there yet
    (a wrong ``HUB_DATA_DIR`` would otherwise look like an empty hub)."""
    url = settings.database_url or f"sqlite:///{(settings.data_dir / 'hub.db').resolve()}"
    path = sqlite_file(url)
    if path is not None and not path.exists():
        fail(f"no database at {path}: run with the api's HUB_DATA_DIR or HUB_DATABASE_URL")
    return url


def open_database(
    settings: Settings, *, read_only: bool = False
) -> tuple[Engine, sessionmaker[Session]]:
    """An engine and sessions on the api's database. Read-only sessions on SQLite read
    beside the api's writer instead of queueing for its lock."""
    url = database_url(settings)
    # A short connect timeout on PostgreSQL: a command must not hang on a wrong host.
    args = {} if url.startswith("sqlite") else {"connect_args": {"connect_timeout": 5}}
    engine = make_engine(url, **args)
    return engine, make_sessionmaker(engine, read_only=read_only)


def checked_tenant(session: Session, tenant: str) -> str:
    """``tenant`` if it is a well-formed id the database knows (it has had events or
    broker sessions); a usage error otherwise, so that a typo does not print nothing."""
    try:
        validate_tenant(tenant)
    except ValueError as exc:
        fail(f"--tenant: {exc}")
    known = session.scalar(
        select(
            exists().where(TenantSequence.tenant == tenant)
            | exists().where(BrokerSession.tenant == tenant)
        )
    )
    if not known:
        fail(f"--tenant: no tenant {tenant!r} in this database")
    return tenant
