"""Reconnect storm: every browser session comes back at once after a broker restart.

``--sessions`` WebSocket sessions (default 1,000) in ``--tenants`` tenants hold
persistent sessions (clean start false, an hour of session expiry) in ``--workers``
child processes, each client behaving as the web client does (contract, section 7):
on every (re)connect it subscribes and replays ``GET /events?after=<its highest seq>``
until caught up, honouring ``Retry-After`` on 429 and 503, and keeps every seq it saw.
While events keep being published (``--rate`` a second, spread over the tenants), the
broker is stopped for ``--downtime`` seconds and started again: every session
reconnects (with jitter, at most ``--concurrency`` connecting at once per worker) and
catches up. A probe meanwhile asks the api for today's schedule ten times a second.

It reports how long until every session was live again, whether any session missed
a seq of its tenant, the HTTP statuses the sessions saw, and the probe's latency
before and during the storm. ``run_storm`` is also what the test
(tests/api/test_reconnect_storm.py) runs; the benchmark prints its figures::

    .venv/bin/python -m bench.storm                    # 1,000 sessions; SQLite and PostgreSQL
    .venv/bin/python -m bench.storm --backend sqlite --sessions 200
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

from bench.mqtt5 import PINGREQ_PACKET, Connection, MqttError, Publish

# Every loop of the benchmark stops by itself.
DEADLINE_SECONDS = float(os.environ.get("BENCH_STORM_DEADLINE", "600"))
_EVENT_TOPIC_SLASHES = 6


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


# The worker: sessions in a child process ------------------------------------------


@dataclass
class Session:
    client_id: str
    username: str
    password: str
    filters: list[str]
    token: str
    seqs: set[int] = field(default_factory=set)
    after: int = 0
    live: bool = False
    connects: int = 0
    replays: int = 0
    conn: Connection | None = None

    @property
    def high(self) -> int:
        return max(self.seqs, default=self.after)


class Worker:
    def __init__(self, opts: argparse.Namespace) -> None:
        self.opts = opts
        self.sessions: list[Session] = []
        self.slots = asyncio.Semaphore(opts.concurrency)
        self.http = httpx.AsyncClient(
            base_url=opts.api, timeout=30, limits=httpx.Limits(max_connections=opts.concurrency)
        )
        self.statuses: Counter[int] = Counter()
        self.errors: Counter[str] = Counter()
        self.closing = False
        self.tasks: list[asyncio.Task[None]] = []

    async def replay(self, s: Session) -> None:
        """GET /events after the session's highest seq, page by page, until caught up;
        Retry-After (with jitter) on 429 and 503, as the web client does."""
        while not self.closing:
            r = await self.http.get(
                "/events",
                params={"after": s.high, "limit": 1000},
                headers={"Authorization": f"Bearer {s.token}"},
            )
            self.statuses[r.status_code] += 1
            if r.status_code in (429, 503):
                wait = float(r.headers.get("Retry-After", "1"))
                await asyncio.sleep(wait * (1 + random.random()))
                continue
            if r.status_code != 200:
                raise MqttError(f"replay answered {r.status_code}")
            page = r.json()
            s.replays += 1
            for e in page["events"]:
                s.seqs.add(int(e["seq"]))
            if not page["events"]:
                return

    def on_publish(self, s: Session, pub: Publish) -> None:
        if pub.topic.count("/") != _EVENT_TOPIC_SLASHES:
            return  # snapshots and meta/seq
        at = pub.payload.find(b'"seq":')
        if at >= 0:
            end = at + 6
            while pub.payload[end : end + 1].isdigit():
                end += 1
            s.seqs.add(int(pub.payload[at + 6 : end]))

    async def keep(self, s: Session) -> None:
        """One session for the whole run: connect, catch up, read; again when lost."""
        delay = 0.5
        while not self.closing:
            conn: Connection | None = None
            try:
                async with self.slots:
                    # Bounded: a SYN dropped by a full listen backlog would otherwise hold
                    # the slot for minutes of TCP retries.
                    conn = await asyncio.wait_for(
                        Connection.open(self.opts.host, self.opts.port, ws=True), 10
                    )
                    await asyncio.wait_for(
                        conn.handshake(
                            client_id=s.client_id,
                            username=s.username,
                            password=s.password,
                            clean_start=False,
                            keepalive=60,
                            session_expiry=3600,
                            subscribe=s.filters,
                        ),
                        30,
                    )
                    s.connects += 1
                    await self.replay(s)
                s.conn, s.live = conn, True
                delay = 0.5
                await conn.run(lambda pub: self.on_publish(s, pub))
                self.errors[f"ended: {conn.ended_by or 'end of stream'}"] += 1
            except (MqttError, OSError, TimeoutError, ValueError, httpx.HTTPError) as exc:
                # A replay that timed out is retried like a lost connection, as the web
                # client does: connect again, replay again.
                self.errors[f"{type(exc).__name__}: {str(exc)[:60]}"] += 1
            finally:
                s.live, s.conn = False, None
                if conn is not None:
                    conn.close()
            if not self.closing:
                # Jitter, so that a thousand sessions do not knock at the same instant.
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 4.0)

    async def pinger(self) -> None:
        """PINGREQ on every live connection within the keep-alive (60 s)."""
        while not self.closing:
            await asyncio.sleep(20)
            for s in self.sessions:
                if s.conn is not None and s.live:
                    with contextlib.suppress(OSError, RuntimeError):
                        s.conn.send(PINGREQ_PACKET)

    def stats(self) -> dict[str, Any]:
        return {
            "type": "stats",
            "sessions": len(self.sessions),
            "live": sum(1 for s in self.sessions if s.live),
            "connects": sum(s.connects for s in self.sessions),
            "statuses": dict(self.statuses),
            "errors": dict(self.errors),
        }

    def verify(self, latest: dict[str, int]) -> dict[str, Any]:
        missing = 0
        incomplete = 0
        sample: list[str] = []
        for s in self.sessions:
            tenant = s.client_id.split(".", 1)[0]
            wanted = set(range(s.after + 1, latest[tenant] + 1))
            lost = sorted(wanted - s.seqs)
            missing += len(lost)
            incomplete += bool(lost)
            if lost and len(sample) < 5:
                sample.append(
                    f"{s.client_id} after {s.after} latest {latest[tenant]}: {lost[:8]} "
                    f"(connects {s.connects}, replays {s.replays}, highest {s.high})"
                )
        return {"type": "verified", "missing": missing, "incomplete": incomplete, "sample": sample}

    async def main(self) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=1 << 24, loop=loop)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        self.tasks.append(asyncio.create_task(self.pinger()))
        try:
            while line := await reader.readline():
                msg = json.loads(line)
                cmd = msg.get("cmd")
                if cmd is None:
                    s = Session(
                        msg["c"], msg["u"], msg["p"], msg["f"], msg["tok"], after=msg["after"]
                    )
                    self.sessions.append(s)
                    self.tasks.append(asyncio.create_task(self.keep(s)))
                elif cmd == "stats":
                    _emit(self.stats())
                elif cmd == "verify":
                    _emit(self.verify(msg["latest"]))
                elif cmd == "close":
                    break
        finally:
            self.closing = True
            for task in self.tasks:
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
            await self.http.aclose()
            _emit({"type": "closed"})


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


# The parent: the stack, the storm, the figures --------------------------------------


@dataclass
class StormResult:
    backend: str
    sessions: int
    connected: int
    live_after: int
    seconds_to_live: float
    missing: int
    incomplete: int
    statuses: dict[int, int]
    probe_before: list[float]
    probe_during: list[float]
    probe_statuses: dict[int, int]
    events: int
    # What the sessions' connection attempts failed with, by exception type.
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def server_errors(self) -> int:
        return sum(n for code, n in self.statuses.items() if code >= 500) + sum(
            n for code, n in self.probe_statuses.items() if code >= 500
        )


class WorkerProcess:
    def __init__(self, host: str, port: int, api: str, concurrency: int) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.storm",
                "--worker",
                "--host",
                host,
                "--port",
                str(port),
                "--api",
                api,
                "--concurrency",
                str(concurrency),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parents[1],
        )
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.stdin: IO[str] = self.proc.stdin
        self.stdout: IO[str] = self.proc.stdout

    def send(self, obj: dict[str, Any]) -> None:
        self.stdin.write(json.dumps(obj) + "\n")
        self.stdin.flush()

    def ask(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.send(obj)
        line = self.stdout.readline()
        if not line:
            raise RuntimeError("a storm worker ended early")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.send({"cmd": "close"})
            self.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.stdout.close()


class Probe(threading.Thread):
    """Today's schedule, ten times a second: the api's latency for other requests."""

    def __init__(self, base_url: str, token: str) -> None:
        super().__init__(daemon=True)
        self.base_url, self.token = base_url, token
        self.samples: list[tuple[float, float]] = []
        self.statuses: Counter[int] = Counter()
        self.stop_flag = threading.Event()

    def run(self) -> None:
        started = time.monotonic()
        with httpx.Client(base_url=self.base_url, timeout=30) as http:
            while not self.stop_flag.is_set() and time.monotonic() - started < DEADLINE_SECONDS:
                t0 = time.perf_counter()
                r = http.get("/appointments", headers={"Authorization": f"Bearer {self.token}"})
                self.statuses[r.status_code] += 1
                self.samples.append((time.monotonic(), (time.perf_counter() - t0) * 1000))
                time.sleep(0.1)


class Publisher(threading.Thread):
    """``rate`` events a second, round robin over the tenants, in small batches."""

    def __init__(self, stack: Any, clinics: list[Any], rate: float) -> None:
        super().__init__(daemon=True)
        self.stack, self.clinics, self.rate = stack, clinics, rate
        self.sent = 0
        self.stop_flag = threading.Event()

    def run(self) -> None:
        started = time.monotonic()
        n = 0
        while not self.stop_flag.is_set() and time.monotonic() - started < DEADLINE_SECONDS:
            clinic = self.clinics[n % len(self.clinics)]
            n += 1
            event = {
                "type": "patient:balance_changed",
                "patientId": clinic.patient_id,
                "entityId": clinic.patient_id,
                "data": {
                    "patientId": clinic.patient_id,
                    "balanceCents": n,
                    "previousBalanceCents": n - 1,
                    "reason": "storm",
                },
            }
            r = self.stack.http(clinic.lab).post("/events", json=event)
            if r.status_code == 202:
                self.sent += 1
            time.sleep(1.0 / self.rate)


def _credentials(stack: Any, token: str) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while True:
        r = stack.http(token).post("/realtime/credentials")
        if r.status_code == 200:
            body: dict[str, Any] = r.json()
            return body
        if r.status_code in (429, 503) and time.monotonic() < deadline:
            time.sleep(float(r.headers.get("Retry-After", "1")) * (1 + random.random()))
            continue
        raise RuntimeError(f"credentials: {r.status_code} {r.text}")


def run_storm(
    stack: Any,
    *,
    sessions: int = 1000,
    tenants: int = 10,
    workers: int = 2,
    concurrency: int = 100,
    rate: float = 20.0,
    downtime: float = 3.0,
) -> StormResult:
    """Connect ``sessions``, restart the broker, wait until every one is live again,
    and check that none missed a seq of its tenant. ``stack``: tests.support.stack."""
    from tests.support.clinic import Clinic

    deadline = time.monotonic() + DEADLINE_SECONDS
    clinics = [Clinic.create(stack) for _ in range(tenants)]
    procs = [
        WorkerProcess("127.0.0.1", stack.broker.ws_port, stack.api.base_url, concurrency)
        for _ in range(workers)
    ]
    probe = Probe(stack.api.base_url, clinics[0].front_desk)
    publisher = Publisher(stack, clinics, rate)
    try:
        _log(f"{stack.backend}: issuing and connecting {sessions} sessions")
        for i in range(sessions):
            clinic = clinics[i % tenants]
            token = stack.token(clinic.tenant, f"u-{i}", "front_desk")
            creds = _credentials(stack, token)
            t = clinic.tenant
            procs[i % workers].send(
                {
                    "c": creds["clientId"],
                    "u": creds["username"],
                    "p": creds["password"],
                    "f": [f"tenants/{t}/patients/#", f"tenants/{t}/meta/#"],
                    "tok": token,
                    "after": creds["latestSeq"],
                }
            )

        errors: Counter[str] = Counter()

        def live() -> tuple[int, dict[int, int]]:
            total, statuses = 0, Counter[int]()
            errors.clear()
            for p in procs:
                st = p.ask({"cmd": "stats"})
                total += st["live"]
                statuses.update({int(k): v for k, v in st["statuses"].items()})
                errors.update(st["errors"])
            return total, dict(statuses)

        while live()[0] < sessions:
            if time.monotonic() > deadline:
                raise TimeoutError("the sessions did not all connect")
            time.sleep(0.5)
        connected = sessions
        probe.start()
        publisher.start()
        time.sleep(3)
        before = time.monotonic()
        _log(f"{stack.backend}: restarting the broker ({downtime:.0f} s down)")
        stack.broker.stop()
        time.sleep(downtime)
        stack.broker.start()
        restarted = time.monotonic()
        # The sessions notice the restart at once (their sockets close); wait until
        # they are all live again.
        while True:
            up, _ = live()
            if up == sessions and time.monotonic() - restarted > 1:
                break
            if time.monotonic() > deadline:
                break
            time.sleep(0.25)
        seconds_to_live = time.monotonic() - restarted
        time.sleep(3)  # live events keep flowing after the storm
        publisher.stop_flag.set()
        publisher.join(timeout=30)
        probe.stop_flag.set()
        probe.join(timeout=30)
        stack.wait_published(timeout=120)
        time.sleep(2)  # the last deliveries reach the sessions
        latest = {c.tenant: c.latest_seq() for c in clinics}
        missing = incomplete = 0
        for p in procs:
            v = p.ask({"cmd": "verify", "latest": latest})
            for line in v["sample"]:
                _log(f"missed: {line}")
            missing += v["missing"]
            incomplete += v["incomplete"]
        live_after, statuses = live()
        return StormResult(
            backend=stack.backend,
            sessions=sessions,
            connected=connected,
            live_after=live_after,
            seconds_to_live=seconds_to_live,
            missing=missing,
            incomplete=incomplete,
            statuses=statuses,
            probe_before=[ms for at, ms in probe.samples if at < before],
            probe_during=[
                ms for at, ms in probe.samples if restarted <= at <= restarted + seconds_to_live + 1
            ],
            probe_statuses=dict(probe.statuses),
            events=publisher.sent,
            errors=dict(errors),
        )
    finally:
        publisher.stop_flag.set()
        probe.stop_flag.set()
        for p in procs:
            p.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench.storm", description=__doc__.split("\n\n")[0])
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--host", default="127.0.0.1", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--api", default="", help=argparse.SUPPRESS)
    p.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    p.add_argument("--sessions", type=int, default=1000)
    p.add_argument("--tenants", type=int, default=10)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--concurrency", type=int, default=100, help="connecting at once per worker")
    p.add_argument("--rate", type=float, default=20.0, help="events a second during the run")
    p.add_argument("--downtime", type=float, default=3.0, help="seconds the broker is down")
    args = p.parse_args(argv)
    if args.worker:
        asyncio.run(Worker(args).main())
        return 0
    if not 1 <= args.sessions <= 20_000 or not 1 <= args.tenants <= args.sessions:
        p.error("--sessions is 1..20000 and --tenants 1..sessions")
    from tests.support.stack import Stack

    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    backends = ["postgresql" if b == "postgres" else b for b in backends]
    if "postgresql" in backends and not os.environ.get("HUB_TEST_POSTGRES_URL"):
        _log("PostgreSQL skipped: HUB_TEST_POSTGRES_URL is not set")
        backends.remove("postgresql")
    results = []
    for backend in backends:
        with tempfile.TemporaryDirectory(prefix=f"bench-storm-{backend}-") as tmp:
            stack = Stack.create(backend, Path(tmp))
            try:
                results.append(
                    run_storm(
                        stack,
                        sessions=args.sessions,
                        tenants=args.tenants,
                        workers=args.workers,
                        concurrency=args.concurrency,
                        rate=args.rate,
                        downtime=args.downtime,
                    )
                )
            finally:
                stack.close()
    print(
        "| database | sessions | live again | all live after | missed seqs | 5xx "
        "| statuses | probe p50/p99 before | probe p50/p99 during |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- | --- | --- |")
    ok = True

    def p50_p99(ms: list[float]) -> str:
        return f"{_percentile(ms, 0.5):.0f} / {_percentile(ms, 0.99):.0f} ms"

    for r in results:
        ok = ok and r.live_after == r.sessions and r.missing == 0 and r.server_errors == 0
        statuses = ", ".join(f"{k}: {v}" for k, v in sorted(r.statuses.items()))
        print(
            f"| {r.backend} | {r.sessions:,} | {r.live_after:,} | {r.seconds_to_live:.1f} s "
            f"| {r.missing} | {r.server_errors} | {statuses} "
            f"| {p50_p99(r.probe_before)} | {p50_p99(r.probe_during)} |"
        )
    for r in results:
        if r.errors:
            _log(f"{r.backend}: connection attempts failed: {r.errors}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
