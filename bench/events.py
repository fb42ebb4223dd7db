"""Benchmark of issue 8: the write-to-screen path. How long an event takes from just
before the HTTP request that writes it to its arrival at WebSocket subscribers, and
how much CPU the api and the broker spend per event.

It starts the real system as the tests do (``tests/support/stack.py``): Mosquitto with
the configuration ``hub up`` writes (token plugin, Dynamic Security) on free loopback
ports over a temporary data directory; a fresh database (a temporary SQLite file, or a
new PostgreSQL database, dropped at the end); and ``--api-processes`` api processes
under uvicorn, each with its relay (one of them active). Tenants, their directory and
patients are created through the api's routes. Every subscriber is a user of its own
with credentials from ``POST /realtime/credentials``, held by ``bench.worker`` child
processes (MQTT 5 over WebSocket, QoS 1, ``tenants/<t>/patients/#``).

Phases, one row each:

1. latency: ``POST /events`` at ``--rate`` per second by the clock (open loop);
2. ingest: ``POST /events`` as fast as ``--concurrency`` callers get answers;
3. domain: ``POST /appointments`` (appointment:created), then
   ``POST /appointments/{id}/status`` checked_in (appointment:checkedin), open loop;
4. batch: ``POST /events/batch``, a few requests in flight ("unavailable" while the
   api has no such route).

Every event of ``POST /events`` and of a booking carries its send time
(``time.monotonic_ns()``, shared by every process of the machine) in its data's
``reason``; a check-in's event cannot, so its arrival is matched by topic against the
send time kept here. Results go to stdout, progress to stderr. From the repository root::

    .venv/bin/python -m bench.events                      # SQLite, full size
    .venv/bin/python -m bench.events --quick              # a smoke run, well under a minute
    .venv/bin/python -m bench.events --backend postgres   # HUB_TEST_POSTGRES_URL or --postgres-url
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import secrets
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from bench.sessions import (
    DeadlineReachedError,
    Worker,
    percentile,
    process_cpu_seconds,
    progress,
    raise_fd_limit,
    run_to_status,
    self_cpu_seconds,
    version,
)
from bench.worker import MARK
from hub.tokens import mint_dev_token
from hub.topics import event_topic
from tests.support.stack import Api, Broker, Database, api_env

HOST = "127.0.0.1"
# A catalog event whose data has a free-text field (``reason``) for the send time.
EVENT_TYPE = "patient:balance_changed"
PROVIDER, LOCATION = "dr-1", "loc-1"
MAX_DEADLINE_S = 3000.0  # broker credentials live an hour (HUB_SESSION_TTL_SECONDS)
REQUEST_TIMEOUT_S = 30.0
IDLE_REOPEN_S = 3.0  # uvicorn closes a keep-alive connection idle for 5 s
LATE_S = 0.010  # an open-loop request started later than this after its time is late
SETTLE_QUIET_S = 15.0  # stop waiting for deliveries after this long without one
MAX_RETRIES = 20  # closed loop: 503 answers retried per request
MAX_RETRY_WAIT_S = 10.0
SETUP_CONCURRENCY = 4  # SQLite serialises writers: more only lengthens lock waits


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # every process started is stopped on the way out


@contextlib.contextmanager
def first_error() -> Iterator[None]:
    """A task group's first failure as itself, so that callers catch what they expect
    (DeadlineReachedError, RuntimeError) rather than an ExceptionGroup."""
    try:
        yield
    except ExceptionGroup as group:
        raise group.exceptions[0] from group


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _event(patient: str, sent_ns: int) -> dict[str, Any]:
    """A ``POST /events`` body; the balance itself is not touched (service event)."""
    return {
        "type": EVENT_TYPE,
        "patientId": patient,
        "entityId": patient,  # a patient event's entity is the patient
        "data": {
            "patientId": patient,
            "balanceCents": 0,
            "previousBalanceCents": 0,
            "reason": f"{MARK}{sent_ns}",
        },
    }


def _booking(patient: str, reason: str | None = None) -> dict[str, Any]:
    start = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(hours=1)
    body = {
        "patientId": patient,
        "providerId": PROVIDER,
        "locationId": LOCATION,
        "scheduledStart": start.isoformat(),
        "scheduledEnd": (start + timedelta(minutes=30)).isoformat(),
    }
    return body if reason is None else {**body, "reason": reason}


# --- HTTP: a small keep-alive client ---


class HttpError(Exception):
    """The connection ended before an answer, or the answer was not understood."""


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    retry_after: float | None
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def _seconds(value: str | None) -> float | None:
    try:
        return None if value is None else float(value)
    except ValueError:  # an HTTP date: the caller waits its default
        return None


class HttpConnection:
    """One HTTP/1.1 keep-alive connection on asyncio streams. httpx spends several
    times the CPU per request, and on two shared cores that comes out of the api's
    share."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.last_used = 0.0

    @property
    def usable(self) -> bool:
        return self.writer is not None and time.monotonic() - self.last_used < IDLE_REOPEN_S

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(HOST, self.port)
        self.last_used = time.monotonic()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def request(self, method: str, path: str, token: str, body: bytes | None) -> Answer:
        if self.reader is None or self.writer is None:
            raise HttpError("not connected")
        head = f"{method} {path} HTTP/1.1\r\nHost: {HOST}:{self.port}\r\n"
        head += f"Authorization: Bearer {token}\r\n"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + (body or b""))
        try:
            raw = await self.reader.readuntil(b"\r\n\r\n")
            lines = raw.decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ", 2)[1])
            headers = {
                k.strip().lower(): v.strip()
                for k, _, v in (line.partition(":") for line in lines[1:] if line)
            }
            if "chunked" in headers.get("transfer-encoding", ""):
                raise HttpError("a chunked answer (not supported here)")
            data = await self.reader.readexactly(int(headers.get("content-length", "0")))
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            raise HttpError(f"no answer: {exc!r}") from exc
        if headers.get("connection", "").lower() == "close":
            self.close()
        else:
            self.last_used = time.monotonic()
        return Answer(status, _seconds(headers.get("retry-after")), data)


class HttpPool:
    """At most ``size`` connections to one api process. Idle ones are reused newest
    first, so a slow phase keeps few of them warm and the others are reopened."""

    def __init__(self, port: int, size: int) -> None:
        self.port = port
        self.slots = asyncio.Semaphore(size)
        self.idle: list[HttpConnection] = []

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[HttpConnection]:
        async with self.slots:
            conn = self.idle.pop() if self.idle else HttpConnection(self.port)
            if not conn.usable:
                conn.close()
                await conn.open()
            try:
                yield conn
            except BaseException:
                conn.close()  # its state is unknown: never reuse it
                raise
            if conn.writer is not None:
                self.idle.append(conn)

    def close(self) -> None:
        for conn in self.idle:
            conn.close()
        self.idle.clear()


# --- the system under test ---


@dataclass
class Stack:
    broker: Broker
    db: Database
    apis: list[Api]
    jwt_secret: str


def start_stack(backend: str, tmp: Path, opts: Options, cleanup: contextlib.ExitStack) -> Stack:
    """Broker, database and api processes; ``cleanup`` stops and drops each of them,
    whatever happens after it was started."""
    broker = Broker(tmp / "data")
    cleanup.callback(broker.stop)
    broker.start()
    db = Database(backend, tmp, admin_url=opts.postgres_url)
    cleanup.callback(db.drop)
    secret = secrets.token_urlsafe(32)
    # The benchmark measures capacity, far past what the rate limits let one service do.
    env = {**api_env(broker, db, secret), "HUB_RATE_LIMIT_ENABLED": "false"}
    apis = []
    for n in range(opts.api_processes):
        api = Api(env=env, log_file=tmp / f"api-{n + 1}.log")
        cleanup.callback(api.stop)
        apis.append(api)
        api.start()
    return Stack(broker, db, apis, secret)


@dataclass
class Tenant:
    name: str
    service: str  # token of a lab-like integration: POST /events
    front_desk: str  # token: patients, bookings, check-ins
    patients: list[str]
    subscribers: int
    # Booked without a mark during set-up, checked in by the domain phase.
    to_check_in: list[tuple[str, str]] = field(default_factory=list)  # (appointment, patient)


# --- figures ---


@dataclass
class Load:
    """What one phase's requests did."""

    sent: int = 0  # events offered (first attempts)
    accepted: int = 0
    rejected: int = 0  # 503 answers
    errors: int = 0  # requests given up: other answers, broken connections, timeouts
    late: int = 0
    expected: int = 0  # deliveries the accepted events owe the subscribers
    first: float = math.inf  # first send (time.monotonic())
    last: float = 0.0  # last answer
    cut: bool = False  # stopped by the deadline
    halt: str | None = None  # why the phase could not run
    messages: list[str] = field(default_factory=list)

    def fail(self, message: str) -> None:
        self.errors += 1
        if len(self.messages) < 5:
            self.messages.append(message)


@dataclass
class Row:
    backend: str
    phase: str
    load: Load
    delivered: int
    latencies_ms: list[float]
    cpu: dict[str, float]
    load_average: float

    @property
    def lost(self) -> int:
        return max(0, self.load.expected - self.delivered)


COLUMNS: tuple[tuple[str, int], ...] = (
    ("backend", 8),
    ("phase", 15),
    ("sent", 6),
    ("accepted", 8),
    ("rejected", 8),
    ("err", 4),
    ("delivered", 17),
    ("lost", 5),
    ("ev_per_s", 8),
    ("p50_ms", 8),
    ("p90_ms", 8),
    ("p99_ms", 8),
    ("max_ms", 8),
    ("api_cpu_s", 9),
    ("api_ms_ev", 9),
    ("brk_ms_ev", 9),
    ("gen_cpu_s", 9),
    ("sub_cpu_s", 9),
    ("load", 5),
)


def _line(cells: Sequence[str]) -> str:
    # backend and phase to the left, figures to the right
    return " ".join(
        c.ljust(w) if i < 2 else c.rjust(w)
        for i, (c, (_, w)) in enumerate(zip(cells, COLUMNS, strict=True))
    ).rstrip()


def _num(value: float, digits: int = 1) -> str:
    return "-" if math.isnan(value) else f"{value:.{digits}f}"


def format_row(row: Row) -> str:
    load = row.load
    phase = row.phase + ("*" if load.cut else "")
    if load.halt is not None:
        return f"{row.backend:<8} {phase:<15} {load.halt}"
    span = load.last - load.first
    per_event = 1000.0 / load.accepted if load.accepted else math.nan
    ms = row.latencies_ms
    return _line(
        (
            row.backend,
            phase,
            str(load.sent),
            str(load.accepted),
            str(load.rejected),
            str(load.errors),
            f"{row.delivered}/{load.expected}",
            str(row.lost),
            _num(load.accepted / span if span > 0 else math.nan, 0),
            *(_num(percentile(ms, q)) for q in (50, 90, 99)),
            _num(max(ms) if ms else math.nan),
            _num(row.cpu["api"], 2),
            _num(row.cpu["api"] * per_event, 2),
            _num(row.cpu["broker"] * per_event, 3),
            _num(row.cpu["gen"], 2),
            _num(row.cpu["subs"], 2),
            _num(row.load_average, 1),
        )
    )


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, row: Row) -> None:
        self.rows.append(row)
        print(format_row(row), flush=True)

    @property
    def failed(self) -> bool:
        return any(r.lost or r.load.errors for r in self.rows)


LEGEND = """\
# sent = events offered (a batch request offers its size); accepted = 202 for
#   POST /events and /events/batch, 201 for a booking, 200 for a check-in; rejected =
#   answers 503 (overloaded): not lost, nothing was written; the open-loop phases
#   (latency, domain) do not retry them, the closed-loop ones (ingest, batch) retry after
#   the Retry-After delay; err = requests given up (other answers, broken connections,
#   timeouts of 30 s, 503 after 20 retries)
# delivered = event deliveries the subscribers received / deliveries owed (accepted
#   events x subscribers of the event's tenant); lost = the difference (must be 0); the
#   phase waits until all arrived or none arrived for 15 s
# ev_per_s = accepted events / seconds from the first request to the last answer
# p50/p90/p99/max_ms: per delivery, from just before the HTTP request (the send time in
#   the event's data.reason; a check-in's kept by the benchmark, matched by topic) to
#   the subscriber's read of the PUBLISH; latency and domain are open loop (requests by
#   the clock, whatever is in flight), ingest and batch closed loop (saturation)
# api_cpu_s = CPU seconds (user + system, /proc/<pid>/stat) of every api process from
#   the phase's first request until its last delivery; api_ms_ev and brk_ms_ev = api and
#   broker CPU ms per accepted event (/proc counts 10 ms ticks: short phases round);
#   gen_cpu_s = this process (the HTTP load generator); sub_cpu_s = the subscribers'
#   client processes
# load = the machine's 1-minute load average at the end of the phase
# a * after the phase: cut short by --deadline"""


# --- the benchmark ---


@dataclass(frozen=True)
class Options:
    backends: tuple[str, ...]
    postgres_url: str | None
    tenants: int
    subscribers: int
    patients: int
    rate: float
    duration_s: float
    connections: int
    concurrency: int
    ingest_events: int
    domain_rate: float
    domain_s: float
    batch_size: int
    batch_events: int
    batch_inflight: int
    api_processes: int
    workers: int
    nice: int
    deadline_s: float


class Bench:
    def __init__(
        self, opts: Options, backend: str, stack: Stack, report: Report, stop_at: float
    ) -> None:
        self.opts = opts
        self.backend = backend
        self.stack = stack
        self.report = report
        self.stop_at = stop_at
        self.pools: list[HttpPool] = []
        self.tenants: list[Tenant] = []
        self.workers: list[Worker] = []

    # -- plumbing --

    def token(self, tenant: str, user: str, role: str) -> str:
        ttl = timedelta(seconds=self.opts.deadline_s + 600)  # outlives the run
        return mint_dev_token(
            secret=self.stack.jwt_secret, tenant=tenant, user=user, roles=[role], ttl=ttl
        )

    def pool(self, i: int) -> HttpPool:
        """Requests go round the api processes."""
        return self.pools[i % len(self.pools)]

    def check_deadline(self, what: str) -> None:
        if time.monotonic() >= self.stop_at:
            raise DeadlineReachedError(f"deadline reached {what}")

    async def call(self, i: int, method: str, path: str, token: str, body: Any = None) -> Any:
        """A set-up request that must succeed; its JSON answer."""
        async with self.pool(i).connection() as conn, asyncio.timeout(REQUEST_TIMEOUT_S):
            answer = await conn.request(method, path, token, None if body is None else _dumps(body))
        if answer.status not in (200, 201):
            raise RuntimeError(f"{method} {path}: {answer.status} {answer.body[:300]!r}")
        return answer.json()

    async def bounded(self, jobs: Sequence[Callable[[], Awaitable[Any]]], limit: int) -> list[Any]:
        slots = asyncio.Semaphore(limit)

        async def one(job: Callable[[], Awaitable[Any]]) -> Any:
            async with slots:
                self.check_deadline("during set-up")
                return await job()

        with first_error():
            async with asyncio.TaskGroup() as tg:
                tasks = [tg.create_task(one(job)) for job in jobs]
        return [t.result() for t in tasks]

    def cpu(self) -> dict[str, float]:
        broker = self.stack.broker.process.process
        return {
            "api": sum(process_cpu_seconds(a.proc.pid) for a in self.stack.apis if a.proc),
            "broker": process_cpu_seconds(broker.pid) if broker else math.nan,
            "gen": self_cpu_seconds(),
            "subs": sum(process_cpu_seconds(w.pid) for w in self.workers),
        }

    async def delivered(self, *, marked: bool) -> int:
        stats = await asyncio.gather(*(w.ask("stats", "stats") for w in self.workers))
        return sum(
            int(s["marked"]) if marked else int(s["events"]) - int(s["marked"]) for s in stats
        )

    async def settle(self, before: int, expected: int, *, marked: bool) -> int:
        """Deliveries since ``before`` once all ``expected`` arrived, none arrived for a
        while, or the deadline came."""
        last, quiet_until = -1, 0.0
        while True:
            got = await self.delivered(marked=marked) - before
            now = time.monotonic()
            if got >= expected or now >= self.stop_at:
                return got
            if got != last:
                last, quiet_until = got, now + SETTLE_QUIET_S
            elif now >= quiet_until:
                return got
            await asyncio.sleep(0.05)

    async def collect(self) -> tuple[list[float], list[tuple[str, float]]]:
        """Latencies (ms) of marked deliveries and arrivals of unmarked ones, since the
        last collection."""
        replies = await asyncio.gather(
            *(w.ask("latencies", "latencies", timeout=120.0) for w in self.workers)
        )
        ms = [float(lat) for r in replies for _, lat in r["samples"]]
        arrivals = [(str(topic), float(t)) for r in replies for topic, t in r["arrivals"]]
        return ms, arrivals

    async def attempt(
        self,
        load: Load,
        i: int,
        method: str,
        path: str,
        token: str,
        body: Callable[[int], bytes | None],
        scheduled: float | None = None,
    ) -> Answer | None:
        """One request, its body made with the send time; None when it got no answer."""
        try:
            async with self.pool(i).connection() as conn:
                sent_ns = time.monotonic_ns()
                if scheduled is not None and sent_ns / 1e9 - scheduled > LATE_S:
                    load.late += 1
                load.first = min(load.first, sent_ns / 1e9)
                async with asyncio.timeout(REQUEST_TIMEOUT_S):
                    answer = await conn.request(method, path, token, body(sent_ns))
        except (OSError, HttpError, TimeoutError) as exc:
            load.fail(f"{method} {path}: {exc!r}")
            return None
        load.last = max(load.last, time.monotonic())
        if answer.status == 503:
            load.rejected += 1
        return answer

    async def until_answered(
        self,
        load: Load,
        i: int,
        path: str,
        token: str,
        body: Callable[[int], bytes | None],
    ) -> Answer | None:
        """Closed loop: a 503 is sent again after its Retry-After."""
        for _ in range(MAX_RETRIES + 1):
            answer = await self.attempt(load, i, "POST", path, token, body)
            if answer is None or answer.status != 503:
                return answer
            wait = 1.0 if answer.retry_after is None else answer.retry_after
            wait = min(max(wait, 0.0), MAX_RETRY_WAIT_S)
            if time.monotonic() + wait >= self.stop_at:
                load.cut = True
                return None
            await asyncio.sleep(wait)
        load.fail(f"POST {path}: still 503 after {MAX_RETRIES} retries")
        return None

    @staticmethod
    def accept(load: Load, answer: Answer | None, ok: int, tenant: Tenant, events: int = 1) -> None:
        if answer is None or answer.status == 503:
            return
        if answer.status != ok:
            load.fail(f"{answer.status} {answer.body[:200]!r}")
            return
        load.accepted += events
        load.expected += events * tenant.subscribers

    async def open_loop(
        self,
        load: Load,
        rate: float,
        count: int,
        send: Callable[[int, float], Coroutine[Any, Any, None]],
    ) -> None:
        """``count`` requests at ``rate`` per second by the clock: each starts at its
        time whatever earlier ones are doing, bounded only by the connection pools."""
        t0 = time.monotonic()
        with first_error():
            async with asyncio.TaskGroup() as tg:
                for i in range(count):
                    at = t0 + i / rate
                    if at >= self.stop_at:
                        load.cut = True
                        break
                    await asyncio.sleep(max(0.0, at - time.monotonic()))
                    tg.create_task(send(i, at))

    async def closed_loop(
        self, load: Load, count: int, callers: int, one: Callable[[int], Awaitable[None]]
    ) -> None:
        """``count`` requests, ``callers`` at a time, each sent when one is answered."""
        next_index = 0

        async def caller() -> None:
            nonlocal next_index
            while next_index < count and load.halt is None:
                if time.monotonic() >= self.stop_at:
                    load.cut = True
                    return
                i = next_index
                next_index += 1
                await one(i)

        with first_error():
            async with asyncio.TaskGroup() as tg:
                for _ in range(callers):
                    tg.create_task(caller())

    async def measure(
        self,
        phase: str,
        run: Callable[[Load], Awaitable[None]],
        *,
        sent_at: dict[str, float] | None = None,
    ) -> None:
        """Run one phase and report its row. ``sent_at``: the phase's events carry no
        send time; their arrivals are matched by topic to these send times."""
        progress(f"{self.backend}: {phase}")
        marked = sent_at is None
        before = await self.delivered(marked=marked)
        cpu0 = self.cpu()
        load = Load()
        await run(load)
        delivered = 0
        if load.halt is None:
            delivered = await self.settle(before, load.expected, marked=marked)
        cpu1 = self.cpu()
        ms, arrivals = await self.collect()
        if sent_at is not None:
            ms = [(t - sent_at[topic]) * 1000.0 for topic, t in arrivals if topic in sent_at]
        row = Row(
            self.backend,
            phase,
            load,
            delivered,
            ms,
            {k: cpu1[k] - cpu0[k] for k in cpu0},
            os.getloadavg()[0],
        )
        self.report.add(row)
        where = f"{self.backend} {phase}"
        self.report.notes += [f"{where}: {m}" for m in load.messages]
        if load.late:
            self.report.notes.append(
                f"{where}: {load.late} requests started over {LATE_S * 1000:.0f} ms late "
                "(every connection busy, or this process short of CPU)"
            )
        if load.cut:
            raise DeadlineReachedError(f"deadline reached during {phase}")

    # -- set-up --

    async def make_tenant(self, index: int, subscribers: int, check_ins: int) -> Tenant:
        name = f"t{index}"
        admin = self.token(name, "ad-1", "admin")
        front = self.token(name, "fd-1", "front_desk")
        staff = {"id": PROVIDER, "name": "Dr. One", "isProvider": True, "roles": ["provider"]}
        await self.call(index, "POST", "/staff", admin, staff)
        await self.call(index, "POST", "/locations", admin, {"id": LOCATION, "name": "Main"})
        patients = []
        for k in range(self.opts.patients):
            body = {"firstName": "Pat", "lastName": f"Bench{k}", "dateOfBirth": "1970-01-01"}
            patients.append((await self.call(index, "POST", "/patients", front, body))["id"])
        tenant = Tenant(name, self.token(name, "svc-1", "service"), front, patients, subscribers)
        for k in range(check_ins):
            patient = patients[k % len(patients)]
            appt = await self.call(index, "POST", "/appointments", front, _booking(patient))
            tenant.to_check_in.append((appt["id"], patient))
        return tenant

    async def setup(self) -> None:
        o = self.opts
        per, extra = divmod(o.subscribers, o.tenants)
        check_ins = math.ceil(self.domain_count / o.tenants)
        progress(
            f"{self.backend}: {o.tenants} tenants, {o.patients} patients and {check_ins} "
            "appointments each"
        )
        self.tenants = await self.bounded(
            [partial(self.make_tenant, i, per + (i < extra), check_ins) for i in range(o.tenants)],
            SETUP_CONCURRENCY,
        )

    @property
    def domain_count(self) -> int:
        return max(1, round(self.opts.domain_rate * self.opts.domain_s))

    @contextlib.asynccontextmanager
    async def subscribers(self) -> AsyncIterator[None]:
        """Each subscriber a user of its own, its credentials from the api, handed to a
        client process as soon as they are issued (as a browser connects)."""
        o = self.opts
        args = ["sessions", "--port", str(self.stack.broker.ws_port), "--events"]
        args += ["--concurrency", "100", "--nice", str(o.nice)]
        try:
            for n in range(o.workers):
                self.workers.append(await Worker.start(f"subscribers-{n}", *args))
            progress(f"{self.backend}: credentials for {o.subscribers} subscribers")
            users = [(t, k) for t in self.tenants for k in range(t.subscribers)]

            async def issue(j: int, tenant: Tenant, k: int) -> None:
                token = self.token(tenant.name, f"u-{k}", "front_desk")
                creds = await self.call(j, "POST", "/realtime/credentials", token)
                self.workers[j % len(self.workers)].send(
                    {
                        "c": creds["clientId"],
                        "u": creds["username"],
                        "p": creds["password"],
                        "f": [creds["topicPrefix"] + "patients/#"],
                    }
                )

            await self.bounded(
                [partial(issue, j, t, k) for j, (t, k) in enumerate(users)],
                SETUP_CONCURRENCY,
            )
            for w in self.workers:
                w.send({"cmd": "end"})
                await w.drain()
            wait = max(30.0, self.stop_at - time.monotonic())
            reports = [await w.expect("connected", wait) for w in self.workers]
            failed = sum(int(r["nfailed"]) for r in reports)
            if failed:
                failures = [f for r in reports for f in r["failures"]][:3]
                raise RuntimeError(f"{failed} subscribers failed to connect: {failures}")
            yield
        finally:
            await asyncio.gather(*(w.close() for w in self.workers))
            self.workers = []

    async def warm_up(self) -> None:
        """One event per tenant, each to every subscriber, before anything is measured:
        the relay is active and every subscription works."""
        load = Load()

        async def send(i: int, tenant: Tenant) -> None:
            body = self.event_body(tenant, 0)
            self.accept(
                load,
                await self.until_answered(load, i, "/events", tenant.service, body),
                202,
                tenant,
            )

        before = await self.delivered(marked=True)
        await self.bounded(
            [partial(send, i, t) for i, t in enumerate(self.tenants)], SETUP_CONCURRENCY
        )
        got = await self.settle(before, load.expected, marked=True)
        await self.collect()
        if load.errors or got != load.expected:
            raise RuntimeError(
                f"warm-up: {got} of {load.expected} deliveries, {load.errors} errors "
                f"{load.messages}"
            )

    # -- phases --

    def event_body(self, tenant: Tenant, i: int) -> Callable[[int], bytes]:
        patient = tenant.patients[(i // len(self.tenants)) % len(tenant.patients)]
        return lambda sent_ns: _dumps(_event(patient, sent_ns))

    async def latency(self) -> None:
        o = self.opts

        async def run(load: Load) -> None:
            async def send(i: int, at: float) -> None:
                tenant = self.tenants[i % len(self.tenants)]
                load.sent += 1
                answer = await self.attempt(
                    load, i, "POST", "/events", tenant.service, self.event_body(tenant, i), at
                )
                self.accept(load, answer, 202, tenant)

            await self.open_loop(load, o.rate, max(1, round(o.rate * o.duration_s)), send)

        await self.measure("latency", run)

    async def ingest(self) -> None:
        async def run(load: Load) -> None:
            async def one(i: int) -> None:
                tenant = self.tenants[i % len(self.tenants)]
                load.sent += 1
                body = self.event_body(tenant, i)
                answer = await self.until_answered(load, i, "/events", tenant.service, body)
                self.accept(load, answer, 202, tenant)

            await self.closed_loop(load, self.opts.ingest_events, self.opts.concurrency, one)

        await self.measure("ingest", run)

    async def domain(self) -> None:
        o = self.opts
        count = self.domain_count

        async def book(load: Load) -> None:
            async def send(i: int, at: float) -> None:
                tenant = self.tenants[i % len(self.tenants)]
                patient = tenant.patients[i % len(tenant.patients)]
                load.sent += 1
                answer = await self.attempt(
                    load,
                    i,
                    "POST",
                    "/appointments",
                    tenant.front_desk,
                    lambda ns: _dumps(_booking(patient, f"{MARK}{ns}")),
                    at,
                )
                self.accept(load, answer, 201, tenant)

            await self.open_loop(load, o.domain_rate, count, send)

        await self.measure("domain-book", book)
        self.check_deadline("before the check-ins")
        # Round the tenants, as the bookings did.
        targets = [
            (t, *t.to_check_in[k])
            for k in range(max(len(t.to_check_in) for t in self.tenants))
            for t in self.tenants
            if k < len(t.to_check_in)
        ][:count]
        sent_at: dict[str, float] = {}

        async def check_in(load: Load) -> None:
            async def send(i: int, at: float) -> None:
                tenant, appt, patient = targets[i]
                topic = event_topic(tenant.name, patient, "appointment", appt, "checkedin").value

                def body(sent_ns: int) -> bytes:
                    sent_at[topic] = sent_ns / 1e9
                    return b'{"status":"checked_in"}'

                load.sent += 1
                path = f"/appointments/{appt}/status"
                answer = await self.attempt(load, i, "POST", path, tenant.front_desk, body, at)
                self.accept(load, answer, 200, tenant)

            await self.open_loop(load, o.domain_rate, len(targets), send)

        await self.measure("domain-checkin", check_in, sent_at=sent_at)

    async def batch(self) -> None:
        o = self.opts
        batches = math.ceil(o.batch_events / o.batch_size)

        async def run(load: Load) -> None:
            async def one(b: int) -> None:
                tenant = self.tenants[b % len(self.tenants)]
                size = min(o.batch_size, o.batch_events - b * o.batch_size)
                patients = [tenant.patients[k % len(tenant.patients)] for k in range(size)]

                def body(sent_ns: int) -> bytes:
                    return _dumps({"events": [_event(p, sent_ns) for p in patients]})

                load.sent += size
                answer = await self.until_answered(load, b, "/events/batch", tenant.service, body)
                if answer is not None and answer.status in (404, 405):
                    load.halt = f"unavailable (POST /events/batch answered {answer.status})"
                elif answer is not None and answer.status == 202:
                    events = answer.json().get("events")
                    answered = len(events) if isinstance(events, list) else 0
                    if answered != size:
                        load.fail(f"a batch of {size} answered {answer.body[:200]!r}")
                    self.accept(load, answer, 202, tenant, answered)
                else:
                    self.accept(load, answer, 202, tenant)

            await self.closed_loop(load, batches, o.batch_inflight, one)

        await self.measure("batch", run)

    async def run(self) -> None:
        size = max(self.opts.connections, self.opts.concurrency, self.opts.batch_inflight)
        self.pools = [HttpPool(api.port, size) for api in self.stack.apis]
        try:
            await self.setup()
            async with self.subscribers():
                progress(f"{self.backend}: warm-up")
                await self.warm_up()
                for phase in (self.latency, self.ingest, self.domain, self.batch):
                    self.check_deadline(f"before {phase.__name__}")
                    await phase()
        finally:
            for pool in self.pools:
                pool.close()

    async def main(self) -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        if task is not None:  # SIGTERM: stop like Ctrl-C, so every process is stopped
            loop.add_signal_handler(signal.SIGTERM, task.cancel)
        try:
            async with asyncio.timeout(max(0.0, self.stop_at - time.monotonic()) + 120.0):
                await self.run()  # the timeout is a backstop for a hang
        finally:
            loop.remove_signal_handler(signal.SIGTERM)
            signal.signal(signal.SIGTERM, _interrupt)


def run_backend(backend: str, opts: Options, report: Report, stop_at: float) -> None:
    with (
        tempfile.TemporaryDirectory(prefix="bench-events-") as tmp,
        contextlib.ExitStack() as cleanup,
    ):
        progress(f"{backend}: broker, database and {opts.api_processes} api process(es)")
        stack = start_stack(backend, Path(tmp), opts, cleanup)
        asyncio.run(Bench(opts, backend, stack, report, stop_at).main())


# --- command line ---


def parse_args(argv: Sequence[str] | None) -> Options:
    p = argparse.ArgumentParser(
        prog="python -m bench.events",
        description="Write-to-screen latency and server CPU per event: POST /events, "
        "appointments and batches through the api to WebSocket subscribers.",
    )
    p.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="sqlite")
    p.add_argument(
        "--postgres-url",
        default=os.environ.get("HUB_TEST_POSTGRES_URL") or None,
        help="a server whose user may CREATE DATABASE (default HUB_TEST_POSTGRES_URL)",
    )
    p.add_argument("--tenants", type=int, default=50, help="(50)")
    p.add_argument("--subscribers", type=int, default=1000, help="over all tenants (1000)")
    p.add_argument("--patients", type=int, default=4, help="per tenant (4)")
    p.add_argument("--rate", type=float, default=200.0, help="latency: events/s (200)")
    p.add_argument("--duration", type=float, default=20.0, help="latency: seconds (20)")
    p.add_argument("--connections", type=int, default=64, help="HTTP connections per api (64)")
    p.add_argument("--concurrency", type=int, default=32, help="ingest: in flight (32)")
    p.add_argument("--ingest-events", type=int, default=10_000, help="(10000)")
    p.add_argument("--domain-rate", type=float, default=50.0, help="requests/s (50)")
    p.add_argument("--domain-seconds", type=float, default=5.0, help="each of book, check-in (5)")
    p.add_argument("--batch-size", type=int, default=500, help="events per request (500)")
    p.add_argument("--batch-events", type=int, default=20_000, help="(20000)")
    p.add_argument("--batch-inflight", type=int, default=4, help="batch requests at once (4)")
    p.add_argument("--api-processes", type=int, default=1, help="on one database (1)")
    p.add_argument("--workers", type=int, default=2, help="subscriber client processes (2)")
    p.add_argument("--nice", type=int, default=0, help="niceness of the subscriber processes")
    p.add_argument("--deadline", type=float, default=1200.0, help="whole run, seconds (1200)")
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 5 tenants, 20 subscribers, 50 events/s for 3 s, 300 ingest "
        "events, domain 10/s for 2 s, 2 batches of 50",
    )
    ns = p.parse_args(argv)
    if ns.quick:
        ns.tenants, ns.subscribers, ns.patients, ns.workers = 5, 20, 2, 1
        ns.rate, ns.duration, ns.connections, ns.concurrency = 50.0, 3.0, 16, 8
        ns.ingest_events, ns.domain_rate, ns.domain_seconds = 300, 10.0, 2.0
        ns.batch_size, ns.batch_events, ns.batch_inflight = 50, 100, 2
    backends = ("sqlite", "postgres") if ns.backend == "both" else (ns.backend,)
    if "postgres" in backends and not ns.postgres_url:
        p.error("postgres needs --postgres-url or HUB_TEST_POSTGRES_URL")
    if not 1 <= ns.tenants <= 1000 or not ns.tenants <= ns.subscribers <= 20_000:
        p.error("--tenants 1..1000, --subscribers from --tenants to 20000")
    if min(ns.patients, ns.connections, ns.concurrency, ns.workers, ns.batch_inflight) < 1:
        p.error("--patients, --connections, --concurrency, --workers, --batch-inflight >= 1")
    if min(ns.rate, ns.duration, ns.domain_rate, ns.domain_seconds) <= 0:
        p.error("rates and durations must be positive")
    if min(ns.ingest_events, ns.batch_size, ns.batch_events) < 1:
        p.error("--ingest-events, --batch-size, --batch-events >= 1")
    if not 1 <= ns.api_processes <= 8:
        p.error("--api-processes 1..8")
    if not 0 < ns.deadline <= MAX_DEADLINE_S:
        p.error(f"--deadline: seconds, at most {MAX_DEADLINE_S:.0f} (credentials last an hour)")
    return Options(
        backends=backends,
        postgres_url=ns.postgres_url,
        tenants=ns.tenants,
        subscribers=ns.subscribers,
        patients=ns.patients,
        rate=ns.rate,
        duration_s=ns.duration,
        connections=ns.connections,
        concurrency=ns.concurrency,
        ingest_events=ns.ingest_events,
        domain_rate=ns.domain_rate,
        domain_s=ns.domain_seconds,
        batch_size=ns.batch_size,
        batch_events=ns.batch_events,
        batch_inflight=ns.batch_inflight,
        api_processes=ns.api_processes,
        workers=ns.workers,
        nice=ns.nice,
        deadline_s=ns.deadline,
    )


def header(opts: Options) -> str:
    o = opts
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    per = o.subscribers / o.tenants
    poll = os.environ.get("HUB_RELAY_POLL_INTERVAL_SECONDS", "1.0")  # the api's default
    return "\n".join(
        (
            f"# events benchmark (issue 8), {version()}, {os.cpu_count()} cores, "
            f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load average {load} at the start",
            f"# {o.tenants} tenants x {o.patients} patients; {o.subscribers} subscribers "
            f"({per:.0f} per tenant, each its own user; MQTT 5 over WebSocket, QoS 1, "
            f"tenants/<t>/patients/#; {o.workers} client process(es), nice {o.nice})",
            f"# {o.api_processes} api process(es) under uvicorn, relay poll {poll} s"
            f"; backends: {', '.join(o.backends)}",
            f"# latency: {o.rate:g} events/s for {o.duration_s:g} s, open loop, up to "
            f"{o.connections} connections per api; ingest: {o.ingest_events} events, "
            f"{o.concurrency} in flight",
            f"# domain: {o.domain_rate:g} requests/s for {o.domain_s:g} s each (bookings, "
            f"then check-ins); batch: {o.batch_events} events, {o.batch_size} per request, "
            f"{o.batch_inflight} in flight",
            f"# POST /events: {EVENT_TYPE} from a service token, send time in data.reason",
            "",
            _line([name for name, _ in COLUMNS]),
        )
    )


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    raise_fd_limit()
    print(header(opts), flush=True)
    report = Report()
    stop_at = time.monotonic() + opts.deadline_s

    def run() -> None:
        for backend in opts.backends:
            run_backend(backend, opts, report, stop_at)

    status = run_to_status(run)
    print("\n" + LEGEND)
    for note in report.notes:
        print(f"# note: {note}")
    if status == 0 and report.failed:
        status = 2
    return status


if __name__ == "__main__":
    sys.exit(main())
