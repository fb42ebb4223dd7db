"""Benchmark: broker credential issuance against a real Mosquitto and SQLite.

Starts Mosquitto from broker-config/ (through ``hub.mosquitto``) on free loopback ports
in a temporary data directory, migrates a temporary SQLite database, and drives
``DynsecAdmin`` + ``CredentialIssuer`` as the api does (reaper included). For each
level it fills the broker up to that many live session clients, then times ``--sample``
further issuances while a separate client (``bench.publisher``, its own process)
publishes QoS 1 messages and times each PUBACK: every dynsec change makes the broker
rewrite its whole JSON file on its only thread, and that stall shows in those round
trips. Results go to stdout as a plain table, progress to stderr.

Run from the repository root::

    .venv/bin/python -m bench.credentials            # levels 1000,5000, sample 200
    .venv/bin/python -m bench.credentials --quick    # levels 100,500, sample 50
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from api.migrate import upgrade
from hub.broker_admin import Acl, DynsecAdmin, Role
from hub.credentials import SESSION_PREFIX, CredentialIssuer
from hub.db import make_engine, make_sessionmaker
from hub.mosquitto import (
    ADMIN_USERNAME,
    BrokerLayout,
    MosquittoProcess,
    prepare_broker_state,
    render_config,
)

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
DEFAULT_LEVELS = (1000, 5000)
QUICK_LEVELS = (100, 500)
DEFAULT_SAMPLE = 200
QUICK_SAMPLE = 50
MAX_SESSIONS_PER_USER = 8  # the api's default (Settings.max_sessions_per_user)
TTL = timedelta(hours=24)  # longer than any run: nothing expires while we measure
PROGRESS_EVERY = 500
IDLE_PUBLISHES = 500
PUBLISH_INTERVAL_MS = 2.0
PUBLISHER = "bench-pub"
PUBLISHER_ROLE = Role("bench.publisher", (Acl("publishClientSend", "bench/#"),))

log = logging.getLogger("bench.credentials")


class DeadlineReachedError(Exception):
    """The overall time budget ran out; what was measured so far is kept."""


# --- figures ---


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class PublishStats:
    latencies_ms: list[float] = field(default_factory=list)
    timeouts: int = 0
    error: str | None = None

    def p(self, q: float) -> float:
        return percentile(self.latencies_ms, q)

    @property
    def max(self) -> float:
        return max(self.latencies_ms) if self.latencies_ms else math.nan


@dataclass
class LevelResult:
    level: int
    requested: int
    fill_seconds: float
    dynsec_bytes: int
    idle: PublishStats
    issue_ms: list[float] = field(default_factory=list)
    wall_seconds: float = 0.0
    busy: PublishStats = field(default_factory=PublishStats)
    broker_cpu_seconds: float = math.nan
    live_after: int = -1

    @property
    def complete(self) -> bool:
        return len(self.issue_ms) == self.requested

    @property
    def per_second(self) -> float:
        return len(self.issue_ms) / self.wall_seconds if self.wall_seconds > 0 else math.nan

    @property
    def broker_cpu_ms(self) -> float:
        """Broker CPU time per issuance during the sample."""
        n = len(self.issue_ms)
        return self.broker_cpu_seconds * 1000.0 / n if n else math.nan


COLUMNS = (
    ("sessions", 8),
    ("issued", 6),
    ("p50_ms", 7),
    ("p95_ms", 7),
    ("max_ms", 7),
    ("per_s", 6),
    ("dynsec_kB", 9),
    ("brk_cpu", 7),
    ("idle_p50", 8),
    ("idle_p99", 8),
    ("busy_p50", 8),
    ("busy_p99", 8),
    ("busy_max", 8),
    ("pubs", 5),
    ("fill_s", 6),
)


def _num(value: float, digits: int = 1) -> str:
    return "-" if math.isnan(value) else f"{value:.{digits}f}"


def format_table(results: Sequence[LevelResult]) -> str:
    header = "  ".join(name.rjust(width) for name, width in COLUMNS)
    lines = [header]
    for r in results:
        cells = [
            str(r.level) + ("" if r.complete else "*"),
            str(len(r.issue_ms)),
            _num(percentile(r.issue_ms, 50)),
            _num(percentile(r.issue_ms, 95)),
            _num(max(r.issue_ms) if r.issue_ms else math.nan),
            _num(r.per_second),
            _num(r.dynsec_bytes / 1000.0, 0),
            _num(r.broker_cpu_ms),
            _num(r.idle.p(50), 2),
            _num(r.idle.p(99), 2),
            _num(r.busy.p(50), 2),
            _num(r.busy.p(99), 2),
            _num(r.busy.max, 2),
            str(len(r.busy.latencies_ms)),
            _num(r.fill_seconds, 0),
        ]
        lines.append("  ".join(c.rjust(w) for c, (_, w) in zip(cells, COLUMNS, strict=True)))
    return "\n".join(lines)


LEGEND = """\
# sessions  live session clients on the broker when the timed sample started
# issued    credentials issued in the timed sample (sequential CredentialIssuer.issue)
# p50/p95/max_ms, per_s  issuance latency and rate during the sample
# dynsec_kB size of dynamic-security.json at the start of the sample
# brk_cpu   broker CPU time (user + system, ms) per issuance during the sample
# idle_*    QoS 1 publish round trip (ms) of another client, no issuance running
# busy_*    the same while the sample was issued; pubs = round trips measured
# fill_s    seconds spent filling up to this level from the previous one
# *         incomplete: the deadline was reached during the sample"""


# --- the system under test ---


def free_ports(count: int) -> list[int]:
    """Distinct free loopback ports (held open together while they are chosen)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in socks:
            s.bind((HOST, 0))
        return [int(s.getsockname()[1]) for s in socks]


@dataclass
class BenchBroker:
    layout: BrokerLayout
    admin_password: str
    process: MosquittoProcess
    log_file: Path

    @classmethod
    def create(cls, data_dir: Path) -> BenchBroker:
        """Prepare the state and configuration; ``process.start()`` starts it."""
        layout = BrokerLayout(data_dir)
        broker_secrets = prepare_broker_state(layout)
        mqtt_port, ws_port = free_ports(2)
        config = render_config(layout, mqtt_port=mqtt_port, ws_port=ws_port, bind_host=HOST)
        log_file = data_dir / "broker.log"
        process = MosquittoProcess(config, mqtt_port=mqtt_port, ws_port=ws_port, log_file=log_file)
        return cls(layout, broker_secrets.admin_password, process, log_file)

    @property
    def port(self) -> int:
        return self.process.mqtt_port

    def version(self) -> str:
        try:
            out = subprocess.run(
                [self.process.executable, "-h"], capture_output=True, timeout=5, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            return "mosquitto (version unknown)"
        first = (out.stdout or out.stderr).decode(errors="replace").splitlines()
        return first[0].strip() if first else "mosquitto (version unknown)"

    def cpu_seconds(self) -> float:
        """User + system CPU time the broker process has used (Linux /proc)."""
        proc = self.process.process
        if proc is None:
            return math.nan
        try:
            stat = Path(f"/proc/{proc.pid}/stat").read_text(encoding="ascii")
        except OSError:
            return math.nan
        fields = stat.rsplit(")", 1)[1].split()
        # Fields 14 and 15 of proc(5), counted after the command name (field 2).
        utime, stime = int(fields[11]), int(fields[12])
        return (utime + stime) / os.sysconf("SC_CLK_TCK")

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_file.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


class Publisher:
    """One ``bench.publisher`` child process."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def result(self, *, stop: bool, timeout: float) -> PublishStats:
        """Ask it to stop (or let it finish its count) and read its figures."""
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        if stop:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.proc.stdin.write(b"stop\n")
                await self.proc.stdin.drain()
        out = await asyncio.wait_for(self.proc.stdout.read(), timeout)
        await asyncio.wait_for(self.proc.wait(), timeout)
        return _parse_publisher_output(out)


def _parse_publisher_output(out: bytes) -> PublishStats:
    lines = [ln for ln in out.decode(errors="replace").splitlines() if ln.strip()]
    if not lines:
        return PublishStats(error="publisher printed nothing")
    try:
        body = json.loads(lines[-1])
    except ValueError:
        return PublishStats(error=f"publisher printed {lines[-1][:200]!r}")
    return PublishStats(
        latencies_ms=[float(v) for v in body.get("latencies_ms", [])],
        timeouts=int(body.get("timeouts", 0)),
        error=body.get("error"),
    )


@contextlib.asynccontextmanager
async def publisher(
    port: int, password: str, *, count: int, max_seconds: float
) -> AsyncIterator[Publisher]:
    """Start a publisher child, wait until it is connected, and always reap it."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.publisher",
        "--port",
        str(port),
        "--username",
        PUBLISHER,
        "--count",
        str(count),
        "--interval-ms",
        str(PUBLISH_INTERVAL_MS),
        "--max-seconds",
        f"{max(1.0, max_seconds):.1f}",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, "BENCH_PUB_PASSWORD": password},
    )
    try:
        assert proc.stdout is not None
        first = await asyncio.wait_for(proc.stdout.readline(), 30.0)
        if first.strip() != b"ready":
            rest = await asyncio.wait_for(proc.stdout.read(), 5.0)
            stats = _parse_publisher_output(first + rest)
            raise RuntimeError(f"publisher did not connect: {stats.error}")
        yield Publisher(proc)
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(proc.wait(), 5.0)


# --- the benchmark ---


@dataclass(frozen=True)
class Options:
    levels: tuple[int, ...]
    sample: int
    per_user: int
    tenants: int
    deadline_seconds: float


def user_for(index: int, opts: Options) -> tuple[str, str]:
    """Session ``index`` belongs to user ``index // per_user``: every user holds at
    most ``per_user`` sessions (below the cap, so nothing is evicted), and one
    issuance in ``per_user`` is a user's first (creating that user's role)."""
    user = index // opts.per_user
    return f"t{user % opts.tenants}", f"u-{user}"


class Bench:
    def __init__(
        self, opts: Options, broker: BenchBroker, issuer: CredentialIssuer, admin: DynsecAdmin
    ) -> None:
        self.opts = opts
        self.broker = broker
        self.issuer = issuer
        self.admin = admin
        self.issued = 0
        self.deadline = time.monotonic() + opts.deadline_seconds
        self.publisher_password = secrets.token_urlsafe(24)

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    async def issue_one(self) -> float:
        tenant, user_id = user_for(self.issued, self.opts)
        t0 = time.perf_counter()
        await self.issuer.issue(tenant=tenant, user_id=user_id, not_after=datetime.now(UTC) + TTL)
        elapsed = time.perf_counter() - t0
        self.issued += 1
        return elapsed

    async def setup_publisher(self) -> None:
        await self.admin.ensure_role(PUBLISHER_ROLE)
        await self.admin.create_client(
            username=PUBLISHER,
            password=self.publisher_password,
            client_id=PUBLISHER,
            roles=[PUBLISHER_ROLE.name],
        )

    async def fill(self, level: int) -> float:
        """Issue credentials until ``level`` sessions are live; return the seconds."""
        started = time.monotonic()
        mark, mark_count = started, self.issued
        while self.issued < level:  # bounded: one issuance per turn, up to ``level``
            if self.remaining() <= 0:
                raise DeadlineReachedError(f"deadline reached while filling ({self.issued})")
            await self.issue_one()
            if self.issued % PROGRESS_EVERY == 0:
                now = time.monotonic()
                rate = (self.issued - mark_count) / max(now - mark, 1e-9)
                size = self.broker.layout.dynsec_file.stat().st_size
                print(
                    f"fill: {self.issued}/{level} live sessions, {rate:.1f} issuances/s "
                    f"recently, dynsec {size / 1000:.0f} kB, {now - started:.0f} s",
                    file=sys.stderr,
                    flush=True,
                )
                mark, mark_count = now, self.issued
        return time.monotonic() - started

    async def idle_publishes(self) -> PublishStats:
        budget = min(30.0, max(1.0, self.remaining()))
        async with publisher(
            self.broker.port,
            self.publisher_password,
            count=IDLE_PUBLISHES,
            max_seconds=budget,
        ) as pub:
            return await pub.result(stop=False, timeout=budget + 15.0)

    async def sample(self, result: LevelResult) -> None:
        """Time ``sample`` sequential issuances while the publisher runs."""
        budget = max(1.0, self.remaining())
        async with publisher(
            self.broker.port,
            self.publisher_password,
            count=10_000_000,  # stopped when the sample is done; --max-seconds bounds it
            max_seconds=budget + 5.0,
        ) as pub:
            cpu_before = self.broker.cpu_seconds()
            started = time.perf_counter()
            for _ in range(result.requested):
                if self.remaining() <= 0:
                    break
                result.issue_ms.append(await self.issue_one() * 1000.0)
            result.wall_seconds = time.perf_counter() - started
            result.broker_cpu_seconds = self.broker.cpu_seconds() - cpu_before
            result.busy = await pub.result(stop=True, timeout=30.0)

    async def live_sessions(self) -> int:
        return sum(1 for n in await self.admin.list_clients() if n.startswith(SESSION_PREFIX))

    async def run(self, results: list[LevelResult]) -> None:
        await self.setup_publisher()
        for level in self.opts.levels:
            fill_seconds = await self.fill(level)
            print(f"level {level}: measuring", file=sys.stderr, flush=True)
            result = LevelResult(
                level=self.issued,
                requested=self.opts.sample,
                fill_seconds=fill_seconds,
                dynsec_bytes=self.broker.layout.dynsec_file.stat().st_size,
                idle=await self.idle_publishes(),
            )
            results.append(result)
            await self.sample(result)
            result.live_after = await self.live_sessions()
            for stats, what in ((result.idle, "idle"), (result.busy, "busy")):
                if stats.error or stats.timeouts:
                    print(
                        f"level {level}: {what} publisher: error={stats.error} "
                        f"timeouts={stats.timeouts}",
                        file=sys.stderr,
                    )
            if result.live_after != self.issued:
                print(
                    f"level {level}: expected {self.issued} live sessions on the broker, "
                    f"found {result.live_after}",
                    file=sys.stderr,
                )
            if not result.complete:
                raise DeadlineReachedError(f"deadline reached during the sample at {level}")


async def run_bench(
    opts: Options, broker: BenchBroker, db_url: str, results: list[LevelResult]
) -> None:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    if task is not None:  # SIGTERM: stop like Ctrl-C, so the broker is stopped too
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
    engine = make_engine(db_url)
    try:
        admin = DynsecAdmin(
            host=HOST, port=broker.port, username=ADMIN_USERNAME, password=broker.admin_password
        )
        issuer = CredentialIssuer(
            admin=admin,
            sessions=make_sessionmaker(engine),
            ttl=TTL,
            max_sessions_per_user=MAX_SESSIONS_PER_USER,
            reap_interval=30.0,
        )
        async with admin, issuer:
            await admin.wait_connected(15.0)
            bench = Bench(opts, broker, issuer, admin)
            # Backstop for a hang the loops cannot see; they stop at the deadline.
            async with asyncio.timeout(opts.deadline_seconds + 120.0):
                await bench.run(results)
    finally:
        engine.dispose()
        loop.remove_signal_handler(signal.SIGTERM)
        signal.signal(signal.SIGTERM, _sigterm)


# --- command line ---


def _levels(text: str) -> tuple[int, ...]:
    try:
        levels = tuple(int(p) for p in text.split(",") if p.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of integers: {text!r}") from None
    if not levels or any(v <= 0 for v in levels) or list(levels) != sorted(set(levels)):
        raise argparse.ArgumentTypeError("levels must be positive and increasing, e.g. 1000,5000")
    return levels


def parse_args(argv: Sequence[str] | None) -> Options:
    p = argparse.ArgumentParser(
        prog="python -m bench.credentials",
        description="Time credential issuance against a real Mosquitto (dynsec) and SQLite.",
    )
    p.add_argument(
        "--levels",
        type=_levels,
        default=DEFAULT_LEVELS,
        help="live session counts to measure at, increasing (default 1000,5000)",
    )
    p.add_argument(
        "--sample", type=int, default=DEFAULT_SAMPLE, help="issuances timed per level (200)"
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke run: levels {','.join(map(str, QUICK_LEVELS))}, sample {QUICK_SAMPLE}",
    )
    p.add_argument(
        "--per-user",
        type=int,
        default=4,
        help=f"sessions per user, 1..{MAX_SESSIONS_PER_USER} (default 4)",
    )
    p.add_argument("--tenants", type=int, default=4, help="tenants the users spread over (4)")
    p.add_argument(
        "--deadline",
        type=float,
        default=1200.0,
        help="overall time budget in seconds; stops and prints what it has (1200)",
    )
    ns = p.parse_args(argv)
    if ns.quick:
        ns.levels, ns.sample = QUICK_LEVELS, QUICK_SAMPLE
    if not 1 <= ns.sample <= 100_000:
        p.error("--sample must be between 1 and 100000")
    if not 1 <= ns.per_user <= MAX_SESSIONS_PER_USER:
        p.error(f"--per-user must be between 1 and {MAX_SESSIONS_PER_USER}")
    if not 1 <= ns.tenants <= 100:
        p.error("--tenants must be between 1 and 100")
    if not 0 < ns.deadline <= 24 * 3600:
        p.error("--deadline must be positive (seconds, at most a day)")
    return Options(
        levels=tuple(ns.levels),
        sample=ns.sample,
        per_user=ns.per_user,
        tenants=ns.tenants,
        deadline_seconds=ns.deadline,
    )


def _sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # stop like Ctrl-C: the finally blocks stop the broker


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(name)s: %(message)s")
    signal.signal(signal.SIGTERM, _sigterm)
    results: list[LevelResult] = []
    status = 0
    version = "mosquitto"
    with tempfile.TemporaryDirectory(prefix="hub-bench-") as tmp:
        tmp_dir = Path(tmp)
        db_url = f"sqlite:///{tmp_dir / 'bench.db'}"
        broker = BenchBroker.create(tmp_dir / "data")
        try:
            version = broker.version()
            upgrade(db_url)
            broker.process.start()
            asyncio.run(run_bench(opts, broker, db_url, results))
        except DeadlineReachedError as exc:
            print(f"stopped: {exc}", file=sys.stderr)
            status = 3
        except (KeyboardInterrupt, asyncio.CancelledError):
            print("interrupted", file=sys.stderr)
            status = 130
        except Exception as exc:
            print(f"failed: {exc!r}", file=sys.stderr)
            tail = broker.log_tail()
            if tail:
                print(f"broker log (last lines):\n{tail}", file=sys.stderr)
            status = 1
        finally:
            broker.process.stop()
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(
        f"# credential issuance, {version}, {os.cpu_count()} cores, "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load average {load} at the end\n"
        f"# {opts.per_user} sessions/user over {opts.tenants} tenants, "
        f"cap {MAX_SESSIONS_PER_USER}/user, TTL {TTL.total_seconds() / 3600:.0f} h, "
        "SQLite (temp file)"
    )
    print(format_table(results))
    print(LEGEND)
    return status


if __name__ == "__main__":
    sys.exit(main())
