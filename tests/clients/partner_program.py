"""A partner's program for the integration tests: handles every event exactly once,
also across SIGKILL, by recording it in the store's own SQLite connection.

    HUB_PARTNER_SECRET=... python -m tests.clients.partner_program \\
        --api URL --store PATH [--out-table handled] [--after SEQ] [--mqtt-url URL] \\
        [--handle-seconds S] [--exit-after N]

Each event becomes a row of ``handled(id TEXT PRIMARY KEY, seq INTEGER, type TEXT)``
in the same transaction as the watermark: a kill before the commit loses both, so the
restarted program handles the event again, and a plain INSERT (a duplicate id would
fail) proves it never does so twice. After each event it prints ``{"id", "seq"}`` as a
JSON line (flushed; the commit follows when the next event is asked for). It prints
``{"ready": true}`` once it holds credentials (it may not be subscribed yet: replay
covers whatever is published meanwhile). Exit status: 0 after SIGTERM, SIGINT or
--exit-after events; 2 when the hub refuses the secret or the history; 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import signal
import sys

from hub_client import HubClientError, HubSubscriber


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="partner_program")
    p.add_argument("--api", required=True)
    p.add_argument("--store", required=True, help="SQLite file: watermark and handled table")
    p.add_argument(
        "--out-table",
        nargs="?",
        const="handled",
        default="handled",
        help="the table events are recorded in (default handled)",
    )
    p.add_argument("--after", type=int)
    p.add_argument("--mqtt-url", help="broker URL instead of the one the api hands out")
    p.add_argument("--session-expiry", type=int, default=3600)
    p.add_argument(
        "--handle-seconds",
        type=float,
        default=0.0,
        help="time spent in the handler per event, inside the transaction (widens the "
        "window a kill can hit)",
    )
    p.add_argument("--exit-after", type=int, help="exit 0 after handling this many events")
    args = p.parse_args(argv)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", args.out_table):
        p.error("--out-table must be a plain SQL identifier")
    return args


async def run(args: argparse.Namespace, secret: str) -> int:
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    table = args.out_table
    handled = 0
    async with HubSubscriber(
        args.api,
        secret,
        store=args.store,
        after=args.after,
        session_expiry=args.session_expiry,
        mqtt_url=args.mqtt_url,
    ) as events:
        db = events.store.connection
        db.execute(
            f"CREATE TABLE IF NOT EXISTS {table} "
            "(id TEXT PRIMARY KEY, seq INTEGER NOT NULL, type TEXT NOT NULL)"
        )
        print(json.dumps({"ready": True}), flush=True)
        async for event in events:
            # Inside the event's transaction: committed with its watermark when the
            # loop asks for the next event. No commit here.
            db.execute(
                f"INSERT INTO {table} (id, seq, type) VALUES (?, ?, ?)",
                (event["id"], event["seq"], event["type"]),
            )
            if args.handle_seconds:
                await asyncio.sleep(args.handle_seconds)
            print(json.dumps({"id": event["id"], "seq": event["seq"]}), flush=True)
            handled += 1
            if args.exit_after is not None and handled >= args.exit_after:
                break
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    secret = os.environ.get("HUB_PARTNER_SECRET", "")
    if not secret:
        print("partner_program: set HUB_PARTNER_SECRET", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s"
    )
    try:
        return asyncio.run(run(args, secret))
    except (asyncio.CancelledError, KeyboardInterrupt):
        return 0
    except HubClientError as exc:
        print(f"partner_program: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
