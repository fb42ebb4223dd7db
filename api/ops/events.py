"""``hub events replay`` and ``hub events tail``: a tenant's committed events as JSON
lines, read from the database (the outbox), not from the broker.

Events carry protected health information: these commands are for operators who
already have access to the database. They print events on stdout only; stderr and
logs get counts and seqs, never contents. Each run leaves an ``events.exported`` audit
row (actor ``operator``).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from api.ops.common import OK, checked_tenant, load_settings, note, open_database
from hub.audit import record_audit
from hub.db import make_sessionmaker
from hub.outbox import ReplayPage, latest_seq, replay

PAGE = 1000  # events per query
PROGRESS_EVERY = 10_000  # replayed events between progress notes


def _write(events: Sequence[dict[str, Any]]) -> None:
    for event in events:
        sys.stdout.write(json.dumps(event, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def _page(
    sessions: sessionmaker[Session],
    tenant: str,
    after: int,
    limit: int,
    types: Sequence[str] | None,
) -> ReplayPage:
    # A new transaction per page: a tail sees what committed since the last one.
    with sessions() as session:
        return replay(session, tenant, after=after, limit=limit, types=types)


def _warn_if_pruned(prog: str, page: ReplayPage, after: int) -> None:
    if page.oldest_seq is not None and page.oldest_seq > after + 1:
        note(
            prog,
            f"events up to seq {page.oldest_seq - 1} are no longer kept "
            "(HUB_REPLAY_RETENTION_DAYS); starting at the oldest kept",
        )


def _audit(engine: Engine, tenant: str, command: str, args: argparse.Namespace) -> None:
    """An operator reading a tenant's events (PHI) is recorded like a replay: the
    command, where it starts and which types, never what it prints."""
    with make_sessionmaker(engine).begin() as session:
        record_audit(
            session,
            tenant=tenant,
            actor="operator",
            actor_kind="hub",
            kind="events.exported",
            details={"command": command, "after": args.after, "types": args.types or None},
        )


def cmd_replay(args: argparse.Namespace) -> int:
    prog = "hub events replay"
    engine, sessions = open_database(load_settings(), read_only=True)
    try:
        with sessions() as session:
            tenant = checked_tenant(session, args.tenant)
        _audit(engine, tenant, "replay", args)
        after, printed, left = args.after, 0, args.limit
        first = True
        while left is None or left > 0:
            size = PAGE if left is None else min(PAGE, left)
            page = _page(sessions, tenant, after, size, args.types)
            if first:
                _warn_if_pruned(prog, page, after)
                first = False
            _write(page.events)
            printed += len(page.events)
            if left is not None:
                left -= len(page.events)
            if page.events:
                after = int(page.events[-1]["seq"])
            if printed and printed % PROGRESS_EVERY < len(page.events):
                note(prog, f"{printed} events so far (seq {after} of {page.latest_seq})")
            if len(page.events) < size:
                break
        note(prog, f"{printed} events; the tenant's latest seq is {page.latest_seq}")
    finally:
        engine.dispose()
    return OK


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def cmd_tail(args: argparse.Namespace) -> int:
    prog = "hub events tail"
    signal.signal(signal.SIGTERM, _stop)  # like Ctrl-C: a service manager's stop
    engine, sessions = open_database(load_settings(), read_only=True)
    try:
        with sessions() as session:
            tenant = checked_tenant(session, args.tenant)
            after = args.after if args.after is not None else latest_seq(session, tenant)
        _audit(engine, tenant, "tail", args)
        note(prog, f"following tenant {tenant} after seq {after} (Ctrl-C stops)")
        first = args.after is not None
        while True:
            page = _page(sessions, tenant, after, PAGE, args.types)
            if first:
                _warn_if_pruned(prog, page, after)
                first = False
            _write(page.events)
            if page.events:
                after = int(page.events[-1]["seq"])
            if len(page.events) < PAGE:
                # Everything up to latest_seq has committed (it is read first), so
                # events of other types up to it need not be read again.
                after = max(after, page.latest_seq)
                time.sleep(args.interval)
    except KeyboardInterrupt:
        return OK
    finally:
        engine.dispose()
