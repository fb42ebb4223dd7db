"""Benchmark: kiosk check-in round trips (the kiosk's publish to the answer it receives).

It uses the test support (``tests/support/stack.py``): Mosquitto from broker-config/ on
free loopback ports, a fresh database (an SQLite file, or a new PostgreSQL database on
the server named by ``HUB_TEST_POSTGRES_URL``) and one api process run by uvicorn. It
enrolls ``--kiosks`` kiosks of one location, books one appointment per request (so
every request is a real check-in that commits ``appointment:checkedin``), and then, for
each of ``--rounds`` rounds, lets every kiosk ask at the same moment (a barrier of one
thread per kiosk, each on its own MQTT 5 connection over TCP). Results go to stdout as a
plain table, progress to stderr.

Run from the repository root::

    .venv/bin/python -m bench.kiosk                    # 20 kiosks, 10 rounds; SQLite and PostgreSQL
    .venv/bin/python -m bench.kiosk --quick --backend sqlite
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.support.clinic import Clinic
from tests.support.kiosk import KioskDevice, check_in_body
from tests.support.stack import Stack

DOB = "1970-01-01"


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def run(backend: str, kiosks: int, rounds: int, tmp: Path) -> tuple[list[float], int]:
    stack = Stack.create(backend, tmp)
    try:
        clinic = Clinic.create(stack)
        start = datetime.now(UTC) + timedelta(minutes=10)
        names = [[f"Bench{k}x{r}" for r in range(rounds)] for k in range(kiosks)]
        _log(f"{backend}: booking {kiosks * rounds} appointments")
        http = stack.http(clinic.front_desk)
        for row in names:
            for name in row:
                r = http.post(
                    "/patients", json={"firstName": "Pat", "lastName": name, "dateOfBirth": DOB}
                )
                r.raise_for_status()
                clinic.book(start=start, patient_id=r.json()["id"])
        devices = [KioskDevice.enroll(clinic, f"k-{k}") for k in range(kiosks)]
        probes = [d.connect() for d in devices]
        timings: list[float] = []
        ok = 0
        lock = threading.Lock()
        try:
            for rnd in range(rounds):
                barrier = threading.Barrier(kiosks)

                def ask(k: int, rnd: int = rnd, barrier: threading.Barrier = barrier) -> None:
                    nonlocal ok
                    # Stay under the responder's 5 requests a second per kiosk, outside
                    # the timed part.
                    time.sleep(max(0.0, devices[k].last_send + 0.25 - time.monotonic()))
                    barrier.wait()
                    began = time.perf_counter()
                    corr = devices[k].send(
                        probes[k], check_in_body(names[k][rnd], DOB), paced=False
                    )
                    answer = devices[k].answer(probes[k], corr, timeout=30)
                    took = (time.perf_counter() - began) * 1000
                    with lock:
                        timings.append(took)
                        ok += answer.get("ok") is True

                threads = [threading.Thread(target=ask, args=(k,)) for k in range(kiosks)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                _log(f"{backend}: round {rnd + 1}/{rounds} done")
        finally:
            for p in probes:
                p.close()
        return timings, ok
    finally:
        stack.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.kiosk", description=__doc__)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "all"], default="all")
    parser.add_argument("--kiosks", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="3 kiosks, 2 rounds")
    args = parser.parse_args(argv)
    kiosks, rounds = (3, 2) if args.quick else (args.kiosks, args.rounds)
    backends = ["sqlite", "postgresql"] if args.backend == "all" else [args.backend]
    if "postgresql" in backends and not os.environ.get("HUB_TEST_POSTGRES_URL"):
        if args.backend == "postgresql":
            _log("HUB_TEST_POSTGRES_URL is not set")
            return 2
        _log("PostgreSQL skipped: HUB_TEST_POSTGRES_URL is not set")
        backends.remove("postgresql")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-kiosk-") as tmp:
        for backend in backends:
            timings, ok = run(backend, kiosks, rounds, Path(tmp) / backend)
            rows.append((backend, timings, ok))
    head = ("kiosks", "requests", "ok", "p50 ms", "p99 ms", "max ms")
    widths = (7, 9, 5, 9, 9, 9)
    print(f"{'backend':<11}" + "".join(f"{h:>{w}}" for h, w in zip(head, widths, strict=True)))
    for backend, timings, ok in rows:
        print(
            f"{backend:<11}{kiosks:>7}{len(timings):>9}{ok:>5}"
            f"{_percentile(timings, 0.5):>9.1f}{_percentile(timings, 0.99):>9.1f}"
            f"{max(timings):>9.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
