"""Benchmark: one integration partner catching up on the events it missed, replay and
the hand-over to live delivery together.

It uses the test support (``tests/support/stack.py``): Mosquitto from broker-config/ on
free loopback ports, a fresh database (an SQLite file, or a new PostgreSQL database on
the server named by ``HUB_TEST_POSTGRES_URL``) and one api process run by uvicorn. A
partner granted ``patient:balance_changed`` connects once with the Python client
(clients/python, ``HubSubscriber``) and goes away; ``--missed`` events of that type
are published through ``POST /events/batch`` (with as many of a type it was not
granted in between); then the partner comes back while a live stream of
``--live-rate`` granted events a second keeps being published. The clock runs from
the partner's ``async with`` (credentials, connect, subscribe, replay) until it has
handled every missed event and every live event published meanwhile, each once and in
seq order, its watermark committed per event in its SQLite store. Results go to stdout
as a plain table, progress to stderr.

Run from the repository root::

    .venv/bin/python -m bench.partner                  # 10,000 missed; SQLite and PostgreSQL
    .venv/bin/python -m bench.partner --quick --backend sqlite
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hub_client import HubSubscriber
from tests.support.clinic import Clinic
from tests.support.stack import Stack

GRANT = "patient:balance_changed"
# Every load loop stops by itself: no run takes longer than this.
DEADLINE_SECONDS = 300.0


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _event(patient: str, n: int, granted: bool) -> dict[str, Any]:
    if granted:
        data: dict[str, Any] = {
            "patientId": patient,
            "balanceCents": n,
            "previousBalanceCents": n - 1,
            "reason": "bench",
        }
        kind = GRANT
    else:
        data = {
            "patientId": patient,
            "payerId": "bench",
            "memberId": f"m-{n}",
            "verifiedAt": "2026-12-02T10:00:00Z",
        }
        kind = "patient:insurance_verified"
    return {"type": kind, "patientId": patient, "entityId": patient, "data": data}


def publish(clinic: Clinic, first: int, count: int, *, ungranted_too: bool) -> list[str]:
    """``count`` granted events (each followed by one not granted, if asked), in
    batches of 500: the granted ids in seq order."""
    http = clinic.stack.http(clinic.lab)
    events = []
    for n in range(first, first + count):
        events.append(_event(clinic.patient_id, n, True))
        if ungranted_too:
            events.append(_event(clinic.patient_id, n, False))
    ids: list[str] = []
    for i in range(0, len(events), 500):
        r = http.post("/events/batch", json={"events": events[i : i + 500]})
        r.raise_for_status()
        ids += [e["id"] for e in r.json()["events"] if e["type"] == GRANT]
    return ids


@dataclass
class Result:
    backend: str
    missed: int
    live: int
    seconds: float
    handled: int
    in_order: bool


class LiveStream(threading.Thread):
    """Publishes ``rate`` granted events a second, in batches of ten, until stopped."""

    def __init__(self, clinic: Clinic, rate: float, first: int) -> None:
        super().__init__(daemon=True)
        self.clinic, self.rate, self.next = clinic, rate, first
        self.ids: list[str] = []
        self.stop_flag = threading.Event()
        self.lock = threading.Lock()

    def run(self) -> None:
        started = time.monotonic()
        sent = 0
        while not self.stop_flag.is_set() and time.monotonic() - started < DEADLINE_SECONDS:
            due = int((time.monotonic() - started) * self.rate) + 10
            if sent < due:
                ids = publish(self.clinic, self.next, 10, ungranted_too=False)
                with self.lock:
                    self.ids += ids
                self.next += 10
                sent += 10
            else:
                time.sleep(0.01)

    def published(self) -> list[str]:
        with self.lock:
            return list(self.ids)


async def catch_up(
    stack: Stack, secret: str, store: Path, missed: list[str], live: LiveStream
) -> tuple[float, list[str]]:
    handled: list[str] = []
    started = time.perf_counter()
    deadline = time.monotonic() + DEADLINE_SECONDS
    async with HubSubscriber(stack.api.base_url, secret, store=store) as events:
        live.start()
        async for event in events:
            handled.append(event["id"])
            if len(handled) >= len(missed) and not live.stop_flag.is_set():
                # Every missed event is in: stop the live stream, then take what it sent.
                live.stop_flag.set()
                live.join(timeout=30)
            if live.stop_flag.is_set() and len(handled) >= len(missed) + len(live.published()):
                break
            if time.monotonic() > deadline:
                raise TimeoutError("the partner did not catch up in time")
    return time.perf_counter() - started, handled


def run(backend: str, missed_count: int, live_rate: float, tmp: Path) -> Result:
    # One lab token publishes the whole backlog: more than a rate limit allows at once.
    stack = Stack.create(backend, tmp, HUB_RATE_LIMIT_ENABLED="false")
    try:
        clinic = Clinic.create(stack)
        made = clinic.post(
            clinic.admin,
            "/partners",
            {"id": f"bench-{uuid.uuid4().hex[:6]}", "name": "Bench", "eventTypes": [GRANT]},
        )
        secret, store = made["secret"], tmp / "partner.db"

        async def first_visit() -> None:
            # Connect once (a persistent session, a watermark), then go away.
            async with HubSubscriber(stack.api.base_url, secret, store=store):
                await asyncio.sleep(0.5)

        asyncio.run(first_visit())
        _log(f"{backend}: publishing {missed_count} missed events (and as many not granted)")
        missed = publish(clinic, 1, missed_count, ungranted_too=True)
        stack.wait_published(timeout=120)
        live = LiveStream(clinic, live_rate, missed_count + 1)
        _log(f"{backend}: the partner comes back")
        seconds, handled = asyncio.run(catch_up(stack, secret, store, missed, live))
        expected = missed + live.published()
        return Result(
            backend=backend,
            missed=len(missed),
            live=len(live.published()),
            seconds=seconds,
            handled=len(handled),
            in_order=handled[: len(expected)] == expected,
        )
    finally:
        stack.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench.partner", description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    p.add_argument("--missed", type=int, default=10_000)
    p.add_argument("--live-rate", type=float, default=200.0, help="granted events a second")
    p.add_argument("--quick", action="store_true", help="1,000 missed events")
    args = p.parse_args(argv)
    if not 1 <= args.missed <= 100_000 or not 0 < args.live_rate <= 2000:
        p.error("--missed is 1..100000 and --live-rate 0..2000")
    missed = 1000 if args.quick else args.missed
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    if "postgres" in backends and not os.environ.get("HUB_TEST_POSTGRES_URL"):
        if args.backend == "postgres":
            p.error("set HUB_TEST_POSTGRES_URL for PostgreSQL")
        _log("PostgreSQL skipped: HUB_TEST_POSTGRES_URL is not set")
        backends.remove("postgres")
    results = []
    for backend in backends:
        with tempfile.TemporaryDirectory(prefix=f"bench-partner-{backend}-") as tmp:
            results.append(run(backend, missed, args.live_rate, Path(tmp)))
    print("| database | missed | live meanwhile | caught up in | events/s | once, in order |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    ok = True
    for r in results:
        total = r.missed + r.live
        good = r.in_order and r.handled == total
        ok = ok and good
        print(
            f"| {r.backend} | {r.missed:,} | {r.live:,} | {r.seconds:.2f} s | "
            f"{total / r.seconds:,.0f} | {'yes' if good else 'NO'} |"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
