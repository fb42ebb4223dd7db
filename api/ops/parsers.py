"""The command line of the operator's commands: parsers only. The modules that do the
work (and their imports: the database, the broker client) load when a command runs,
so the rest of ``hub`` starts as fast as before."""

from __future__ import annotations

import argparse
from typing import Any

KINDS = ("session", "kiosk", "partner")


def event_types(text: str) -> list[str]:
    """``--types a,b``: catalog names, each known."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise argparse.ArgumentTypeError("give at least one event type")
    from hub.catalog import CATALOG  # here: imported only when --types is given

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


def _events(sub: Any) -> None:
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
    tail.set_defaults(handler=("events", "cmd_tail"))
    rep = actions.add_parser("replay", help="print committed events after a seq, then exit")
    rep.add_argument("--after", type=seq, default=0, help="events with a higher seq (default 0)")
    rep.add_argument("--limit", type=positive, help="at most this many events (default all)")
    rep.set_defaults(handler=("events", "cmd_replay"))
    for p in (tail, rep):
        p.add_argument("--tenant", required=True)
        p.add_argument(
            "--types", type=event_types, help="comma-separated event types, e.g. claim:denied"
        )


def _sessions(sub: Any) -> None:
    sessions = sub.add_parser("sessions", help="broker sessions: list, revoke")
    actions = sessions.add_subparsers(dest="action", required=True)
    lst = actions.add_parser("list", help="the tenant's live broker sessions")
    lst.add_argument("--tenant", required=True)
    lst.add_argument("--kind", choices=KINDS)
    lst.add_argument("--all", action="store_true", help="also revoked and expired ones")
    lst.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    lst.set_defaults(handler=("sessions", "cmd_list"))
    rev = actions.add_parser(
        "revoke",
        help="revoke sessions now (the broker disconnects them)",
        description="Revoke broker sessions as the api does: committed with an audit row "
        "(actor 'operator'), then sent to the broker. Kiosks and partners are better "
        "disabled or removed through the api: a revocation only lasts until the "
        "credential would have expired.",
    )
    rev.add_argument("--tenant", required=True)
    rev.add_argument("client_ids", nargs="*", metavar="CLIENT_ID")
    rev.add_argument("--user", help="every live session of this user, kiosk or partner id")
    rev.add_argument("--all-of-kind", choices=KINDS, help="every live session of this kind")
    rev.set_defaults(handler=("sessions", "cmd_revoke"))


def _check(sub: Any) -> None:
    check = sub.add_parser(
        "check",
        help="check configuration, database, broker, keys, clock and relay (exit 1 on FAIL)",
    )
    check.set_defaults(handler=("check", "cmd_check"))


def add_parsers(sub: Any) -> None:
    _events(sub)
    _sessions(sub)
    _check(sub)
