"""PostgreSQL LISTEN/NOTIFY for the outbox: a commit that wrote outbox rows wakes the
relays of every api process, not only the relay of the process that wrote them.

NOTIFY is transactional: it is sent in the writing transaction and delivered when,
and only if, that transaction commits. The relays' poll stays the fallback for
anything missed (a notification that arrived while a listener was reconnecting).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session

from hub.service import BackgroundService

log = logging.getLogger("hub.pgnotify")

OUTBOX_CHANNEL = "hub_outbox"
# Each process names itself in its notifications: its own relay is already woken by
# the commit itself (hub.outbox.notify_committed), and a second wake by the echo would
# cost an empty pass (a transaction and two round trips) per commit.
PROCESS_TOKEN = ""
NOTIFY_SQL = ""


def _name_this_process() -> None:
    global PROCESS_TOKEN, NOTIFY_SQL
    PROCESS_TOKEN = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    NOTIFY_SQL = f"NOTIFY {OUTBOX_CHANNEL}, '{PROCESS_TOKEN}'"


_name_this_process()
# A worker forked after import (gunicorn --preload) is another process: its own name.
os.register_at_fork(after_in_child=_name_this_process)

# Client-side TCP keepalives: a dedicated connection that only waits must still notice
# that its server or the network went away (about 25 s instead of hours).
_KEEPALIVES = {
    "keepalives": "1",
    "keepalives_idle": "10",
    "keepalives_interval": "5",
    "keepalives_count": "3",
    "connect_timeout": "10",
}


def notify_sql() -> str:
    """``NOTIFY`` naming this process (read at call time: a fork renames it)."""
    return NOTIFY_SQL


def notify_outbox(session: Session) -> None:
    """Queue a NOTIFY in ``session``'s transaction (PostgreSQL only; a no-op elsewhere)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(notify_sql()))


def conninfo(url: URL, *, application_name: str | None = None) -> str:
    """A libpq connection string for a SQLAlchemy PostgreSQL URL, with keepalives (and
    ``application_name``, which names the connection in ``pg_stat_activity``)."""
    params: dict[str, Any] = dict(_KEEPALIVES)
    if application_name:
        params["application_name"] = application_name
    params.update(url.translate_connect_args(username="user", database="dbname"))
    for key, value in url.query.items():
        params[key] = value if isinstance(value, str) else value[-1]
    return psycopg.conninfo.make_conninfo("", **{k: str(v) for k, v in params.items()})


class NotifyListener(BackgroundService):
    """LISTENs on one dedicated connection and calls ``on_notify`` for every
    notification, and once after each (re)connect for those it may have missed.
    Reconnects with capped, jittered backoff; never stops on a database error."""

    _task_name = "hub-outbox-listener"

    def __init__(
        self,
        *,
        conninfo: str,
        on_notify: Callable[[], None],
        channel: str = OUTBOX_CHANNEL,
        max_backoff: float = 5.0,
    ) -> None:
        super().__init__()
        self._conninfo = conninfo
        self._on_notify = on_notify
        self._channel = channel
        self._max_backoff = max_backoff
        self._listening = False

    @property
    def listening(self) -> bool:
        return self._listening

    async def _run(self) -> None:
        delay = 0.1
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
                async with conn:
                    await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
                    self._listening = True
                    delay = 0.1
                    self._on_notify()
                    async for note in conn.notifies():
                        if note.payload != PROCESS_TOKEN:  # read now: may change at fork
                            self._on_notify()
            except (psycopg.Error, OSError) as exc:
                log.warning("outbox listener: %s; reconnecting in about %.1fs", exc, delay)
            finally:
                self._listening = False
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, self._max_backoff)
