"""Benchmark: two api processes on one database and one broker.

How long an event takes from the start of the request that books it to a subscriber,
when it is written through the api whose relay is active and through the standby
(on PostgreSQL NOTIFY wakes the active relay; on SQLite it finds the event at its
poll), and how long a take-over takes after ``kill -9`` of the active process.

It uses the test support (``tests/support/stack.py``): Mosquitto from broker-config/
on free loopback ports, a fresh database (an SQLite file, or a new PostgreSQL database
on the server named by ``HUB_TEST_POSTGRES_URL``), two api processes run by uvicorn,
and a subscriber that reads every tenant. Relays poll at the production default
(``HUB_RELAY_POLL_INTERVAL_SECONDS`` 1.0) unless ``--poll`` says otherwise. Results go
to stdout as plain tables, progress to stderr.

Run from the repository root::

    .venv/bin/python -m bench.relay_ha                   # SQLite, and PostgreSQL if configured
    .venv/bin/python -m bench.relay_ha --quick --backend sqlite
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.support.clinic import Clinic
from tests.support.mqtt import Probe
from tests.support.stack import Api, Stack

DEFAULT_EVENTS = 100
QUICK_EVENTS = 10
WAIT = 30.0  # longest wait for one event or a take-over before the run fails


@dataclass
class Latencies:
    backend: str
    path: str  # "active" or "standby": which api the bookings went through
    ms: list[float]


@dataclass
class Takeover:
    backend: str
    role_ms: float  # kill -9 until the standby reports itself active
    event_ms: float  # kill -9 until an event booked right after it was received


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q / 100.0 * len(ordered))) - 1]


def _role(api: Api) -> str | None:
    try:
        r = httpx.get(api.base_url + "/readyz", timeout=5)
    except httpx.HTTPError:
        return None
    return str(r.json()["checks"]["relay"]["role"]) if r.status_code == 200 else None


def _wait_role(api: Api, role: str) -> None:
    deadline = time.monotonic() + WAIT
    while _role(api) != role:
        if time.monotonic() > deadline:
            raise TimeoutError(f"api on port {api.port} never became {role}")
        time.sleep(0.01)


def _since(start: float) -> float:
    return (time.perf_counter() - start) * 1000


def _book_and_receive(clinic: Clinic, via: Api, reader: Probe) -> float:
    """Milliseconds from the start of the booking request to the event's arrival."""
    start = time.perf_counter()
    appt: dict[str, Any] = clinic.book(via=via)
    reader.wait_for(lambda m: appt["id"] in m.topic and m.topic.endswith("/created"), WAIT)
    return _since(start)


def run_backend(backend: str, *, events: int, poll: float) -> tuple[list[Latencies], Takeover]:
    with tempfile.TemporaryDirectory(prefix="bench-relay-ha-") as tmp:
        stack = Stack.create(
            backend, Path(tmp) / "stack", HUB_RELAY_POLL_INTERVAL_SECONDS=str(poll)
        )
        try:
            reader = stack.reader()
            try:
                assert not reader.subscribe("tenants/+/patients/+/+/+/+").is_failure
                clinic = Clinic.create(stack)
                _wait_role(stack.api, "active")
                active, standby = stack.api, stack.add_api()
                _wait_role(standby, "standby")
                results = []
                for path, via in (("active", active), ("standby", standby)):
                    print(f"{backend}: {events} events through the {path} api", file=sys.stderr)
                    ms = [_book_and_receive(clinic, via, reader) for _ in range(events)]
                    results.append(Latencies(backend, path, ms))
                print(f"{backend}: kill -9 of the active api", file=sys.stderr)
                role_ms: list[float] = []
                watcher = threading.Thread(
                    target=lambda: (_wait_role(standby, "active"), role_ms.append(_since(killed)))
                )
                killed = time.perf_counter()
                active.kill()
                watcher.start()
                _book_and_receive(clinic, standby, reader)
                event_ms = _since(killed)
                watcher.join(WAIT)
                if not role_ms:
                    raise TimeoutError("the standby never reported itself active")
                return results, Takeover(backend, role_ms[0], event_ms)
            finally:
                reader.close()
        finally:
            stack.close()


def _print(latencies: list[Latencies], takeovers: list[Takeover]) -> None:
    print(f"{'backend':<11} {'via':<8} {'events':>6} {'p50_ms':>8} {'p95_ms':>8} {'max_ms':>8}")
    for row in latencies:
        print(
            f"{row.backend:<11} {row.path:<8} {len(row.ms):>6} {percentile(row.ms, 50):>8.1f}"
            f" {percentile(row.ms, 95):>8.1f} {max(row.ms):>8.1f}"
        )
    print()
    print(f"{'backend':<11} {'takeover_role_ms':>16} {'takeover_event_ms':>17}")
    for t in takeovers:
        print(f"{t.backend:<11} {t.role_ms:>16.0f} {t.event_ms:>17.0f}")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # the stacks stop their processes on the way out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.relay_ha")
    p.add_argument("--events", type=int, default=None, help=f"per path (default {DEFAULT_EVENTS})")
    p.add_argument("--quick", action="store_true", help=f"{QUICK_EVENTS} events per path")
    p.add_argument("--poll", type=float, default=1.0, help="HUB_RELAY_POLL_INTERVAL_SECONDS")
    p.add_argument(
        "--backend",
        choices=["sqlite", "postgresql"],
        action="append",
        help="repeatable; default sqlite, and postgresql when HUB_TEST_POSTGRES_URL is set",
    )
    args = p.parse_args(argv)
    events = args.events or (QUICK_EVENTS if args.quick else DEFAULT_EVENTS)
    backends = args.backend or (
        ["sqlite", "postgresql"] if os.environ.get("HUB_TEST_POSTGRES_URL") else ["sqlite"]
    )
    if "postgresql" in backends and not os.environ.get("HUB_TEST_POSTGRES_URL"):
        p.error("postgresql needs HUB_TEST_POSTGRES_URL (its user may CREATE DATABASE)")
    signal.signal(signal.SIGTERM, _interrupt)
    latencies: list[Latencies] = []
    takeovers: list[Takeover] = []
    try:
        for backend in backends:
            rows, takeover = run_backend(backend, events=events, poll=args.poll)
            latencies += rows
            takeovers.append(takeover)
    except KeyboardInterrupt:
        _print(latencies, takeovers)
        return 130
    _print(latencies, takeovers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
