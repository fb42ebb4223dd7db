"""``hub events replay`` and ``hub events tail``: a tenant's committed events as JSON
lines, read from the database (the outbox), not from the broker.

Events carry protected health information: these commands are for operators who
already have access to the database. They print events on stdout only; stderr and
logs get counts and seqs, never contents.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from api.ops.common import OK, checked_tenant, load_settings, note, open_database
from hub.catalog import CATALOG
from hub.outbox import ReplayPage, latest_seq, replay

PAGE = 1000  # events per query
PROGRESS_EVERY = 10_000  # replayed events between progress notes


def event_types(text: str) -> list[str]:
    """``--types a,b``: catalog names, each known."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise argparse.ArgumentTypeError("give at least one event type")
    unknown = [t for t in names if t not in CATALOG]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown event type(s) {', '.join(unknown)} "
            "(the catalog: GET /events/catalog or docs/events.md)"
        )
    return names


def seq(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a seq: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("a seq is 0 or more")
    return value


def interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.05 <= value <= 60:
        raise argparse.ArgumentTypeError("between 0.05 and 60 seconds")
    return value


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


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


def cmd_replay(args: argparse.Namespace) -> int:
    prog = "hub events replay"
    engine, sessions = open_database(load_settings(), read_only=True)
    try:
        with sessions() as session:
            tenant = checked_tenant(session, args.tenant)
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


def add_parser(sub: Any) -> None:
    events = sub.add_parser(
        "events",
        help="a tenant's committed events as JSON lines, from the database (PHI: operators only)",
        description="Read a tenant's committed events from the database and print them as "
        "JSON lines on stdout. Events contain protected health information: for operators "
        "who have access to the database.",
    )
    actions = events.add_subparsers(dest="action", required=True)
    tail = actions.add_parser("tail", help="print new events as they commit, until Ctrl-C")
    tail.add_argument(
        "--after", type=seq, help="start after this seq (default: the tenant's latest now)"
    )
    tail.add_argument(
        "--interval", type=interval, default=0.5, help="seconds between polls (default 0.5)"
    )
    tail.set_defaults(handler=cmd_tail)
    rep = actions.add_parser("replay", help="print committed events after a seq, then exit")
    rep.add_argument("--after", type=seq, default=0, help="events with a higher seq (default 0)")
    rep.add_argument("--limit", type=positive, help="at most this many events (default all)")
    rep.set_defaults(handler=cmd_replay)
    for p in (tail, rep):
        p.add_argument("--tenant", required=True)
        p.add_argument(
            "--types", type=event_types, help="comma-separated event types, e.g. claim:denied"
        )
