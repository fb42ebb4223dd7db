"""Benchmark: browser sessions on the broker, token credentials against the old
Dynamic Security clients, in one run on one machine.

Each phase starts its own Mosquitto through ``hub.mosquitto`` (temporary data
directory, free loopback ports, the configuration ``hub up`` writes) and a temporary
SQLite database migrated with ``api.migrate.upgrade``; the api's pieces run in this
process (``CredentialIssuer`` with a ``TokenSigner`` over the data directory's
``KeyRing``, ``DynsecAdmin`` logged in as ``hub-admin``). MQTT clients run in child
processes (``bench.worker``): WebSocket sessions at ``/mqtt``, MQTT 5, clean start
false, one hour of session expiry, each subscribing at QoS 1 to
``tenants/<t>/patients/+/appointment/#``.

1. storm, tokens: issue N credentials (``CredentialIssuer.issue``) and connect and
   subscribe each as soon as it is issued, at most C connecting at once.
2. storm, dynsec: the same with the old design's credentials (a dynsec client per
   session: ``createClient`` bound to its client id, ``addClientRole`` of the tenant's
   and the user's role), on a broker configured without the token plugin.
   During both storms a probe subscriber of tenant ``probe`` (not one of the storm's
   tenants, so the storm's sessions receive nothing) gets QoS 1 messages from the
   relay's account at a steady rate; each payload carries its send time.
3. fan-out: one publisher to K subscribers of one tenant, QoS 1, M messages, token
   subscribers and dynsec subscribers on one broker with the plugin, and dynsec
   subscribers on a broker without it, one after the other, repeated.
4. memory: the broker's VmRSS before and after the storm's sessions connected.

Results go to stdout as plain tables, progress to stderr. Run from the repository root::

    .venv/bin/python -m bench.sessions            # 10,000 token sessions; dynsec 2,000 and 5,000
    .venv/bin/python -m bench.sessions --quick    # 300 sessions, under a minute
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import os
import resource
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from api.migrate import upgrade
from hub.broker_admin import Acl, DynsecAdmin, Role
from hub.broker_tokens import KeyRing, TokenSigner, session_acl
from hub.credentials import BrokerSession, CredentialIssuer, username_for
from hub.db import make_engine, make_sessionmaker, utcnow
from hub.mosquitto import (
    ADMIN_USERNAME,
    DEFAULT_TOKEN_ISSUER,
    SERVICE_ROLE,
    SERVICE_USERNAME,
    BrokerLayout,
    MosquittoProcess,
    prepare_broker_state,
    render_config,
)
from hub.topics import meta_filter, patients_filter, user_filter

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
TTL = timedelta(hours=2)  # longer than any run
MAX_SESSIONS_PER_USER = 8  # the api's default
PER_USER = 4  # sessions per user: below the cap, so nothing is evicted
PROBE_TENANT = "probe"
PROBE_TOPIC = f"tenants/{PROBE_TENANT}/patients/p-1/appointment/a-1/created"
FAN_TOPIC = "tenants/{tenant}/patients/p-1/appointment/a-1/created"
PROGRESS_EVERY = 1000

log = logging.getLogger("bench.sessions")


class DeadlineReachedError(Exception):
    """The overall time budget ran out; what was measured so far is printed."""


def run_to_status(run: Callable[[], object]) -> int:
    """Run a benchmark's measuring part; its exit status (0, 3 cut short by the deadline,
    130 interrupted, 1 failed), with the reason on stderr. Callers print their tables
    either way."""
    try:
        run()
    except DeadlineReachedError as exc:
        print(f"stopped: {exc}", file=sys.stderr)
        return 3
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        print(f"failed: {exc!r}", file=sys.stderr)
        return 1
    return 0


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[rank - 1]


def progress(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def free_ports(count: int) -> list[int]:
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in socks:
            s.bind((HOST, 0))
        return [int(s.getsockname()[1]) for s in socks]


def machine_busy_seconds() -> float:
    """CPU time every core of the machine spent busy (not idle or waiting), /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def self_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class CpuMeter:
    """CPU seconds used by the broker, this process (the api's part), the storm's
    clients, the probe's two processes, and everything else on the machine."""

    broker: int
    clients: list[int]
    probe: list[int]
    start: dict[str, float] = field(default_factory=dict)

    def sample(self) -> dict[str, float]:
        return {
            "machine": machine_busy_seconds(),
            "broker": process_cpu_seconds(self.broker),
            "api": self_cpu_seconds(),
            "clients": sum(process_cpu_seconds(p) for p in self.clients),
            "probe": sum(process_cpu_seconds(p) for p in self.probe),
        }

    def begin(self) -> None:
        self.start = self.sample()

    def used(self) -> dict[str, float]:
        end = self.sample()
        used = {k: end[k] - self.start[k] for k in end}
        ours = used["broker"] + used["api"] + used["clients"] + used["probe"]
        used["others"] = used.pop("machine") - ours
        return used


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


# --- the broker and the api's pieces ---


class BenchBroker:
    """Mosquitto as ``hub up`` configures it; ``plugin=False`` drops the token plugin's
    lines (the broker of the old design: Dynamic Security only)."""

    def __init__(self, data_dir: Path, *, plugin: bool) -> None:
        self.layout = BrokerLayout(data_dir)
        self.secrets = prepare_broker_state(self.layout)
        self.plugin = plugin
        self.keys = KeyRing(directory=self.layout.secrets_dir / "broker-signing")
        # As the api does at start: the broker reads the public keys from this file.
        self.keys.write_jwks(self.layout.jwks_file)
        mqtt_port, ws_port = free_ports(2)
        config = render_config(
            self.layout, mqtt_port=mqtt_port, ws_port=ws_port, bind_host=HOST, token_plugin=plugin
        )
        self.log_file = data_dir / "broker.log"
        self.process = MosquittoProcess(
            config, mqtt_port=mqtt_port, ws_port=ws_port, log_file=self.log_file
        )

    @property
    def pid(self) -> int:
        assert self.process.process is not None
        return self.process.process.pid

    def rss_kb(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return -1

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_file.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def version() -> str:
    try:
        out = subprocess.run(["mosquitto", "-h"], capture_output=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "mosquitto"
    first = (out.stdout or out.stderr).decode(errors="replace").splitlines()
    return first[0].strip() if first else "mosquitto"


def tenant_role(tenant: str) -> Role:
    """The old design's tenant role (hub/credentials.py before tokens)."""
    acls: list[Acl] = []
    for topic in (patients_filter(tenant), meta_filter(tenant)):
        acls += [Acl("subscribePattern", topic), Acl("publishClientReceive", topic)]
    return Role(f"tenant.{tenant}", tuple(acls))


def user_role(tenant: str, user_id: str) -> Role:
    topic = user_filter(tenant, user_id)
    return Role(
        f"user.{tenant}.{user_id}",
        (Acl("subscribePattern", topic), Acl("publishClientReceive", topic)),
    )


@dataclass(frozen=True, slots=True)
class Creds:
    client_id: str
    username: str
    password: str
    tenant: str

    def spec(self) -> dict[str, Any]:
        return {
            "c": self.client_id,
            "u": self.username,
            "p": self.password,
            "f": [f"tenants/{self.tenant}/patients/+/appointment/#"],
        }


class Hub:
    """One broker plus the api's credential pieces on a fresh SQLite database."""

    def __init__(
        self, broker: BenchBroker, issuer: CredentialIssuer, admin: DynsecAdmin, sessions: Any
    ):
        self.signer = TokenSigner(broker.keys, issuer=DEFAULT_TOKEN_ISSUER)
        self.broker = broker
        self.issuer = issuer
        self.admin = admin
        self.sessions = sessions

    async def issue_token(self, tenant: str, user_id: str) -> Creds:
        c = await self.issuer.issue(
            tenant=tenant, user_id=user_id, not_after=datetime.now(UTC) + TTL
        )
        return Creds(c.client_id, c.username, c.password, tenant)

    async def issue_dynsec(self, tenant: str, user_id: str) -> Creds:
        """The old design's issuance: a session row, then a dynsec client bound to its
        client id with the tenant's and the user's roles (roles created on first use)."""
        now = utcnow()
        client_id = f"{tenant}.{user_id}.{secrets.token_hex(4)}"
        username = f"s.{client_id}"
        password = secrets.token_urlsafe(24)

        def record() -> None:
            with self.sessions.begin() as session:
                session.add(
                    BrokerSession(
                        client_id=client_id,
                        username=username,
                        tenant=tenant,
                        user_id=user_id,
                        kind="session",
                        created_at=now,
                        expires_at=now + TTL,
                        ttl_seconds=int(TTL.total_seconds()),
                    )
                )

        await asyncio.to_thread(record)
        grants = [tenant_role(tenant), user_role(tenant, user_id)]
        for role in grants:
            await self.admin.ensure_role(role)
        await self.admin.create_client(
            username=username,
            password=password,
            client_id=client_id,
            roles=[r.name for r in grants],
        )
        return Creds(client_id, username, password, tenant)

    async def sign_only(self, tenant: str, user_id: str) -> Creds:
        """A token as the issuer makes it, without its database row: what the broker
        side costs when the api's issuance is taken out."""
        client_id = f"{tenant}.{user_id}.{secrets.token_hex(4)}"
        username = username_for("session", client_id)
        token = self.signer.sign(
            kind="session",
            tenant=tenant,
            sub=user_id,
            client_id=client_id,
            username=username,
            expires_at=datetime.now(UTC) + TTL,
            acl=session_acl(tenant, user_id),
        )
        return Creds(client_id, username, token.token, tenant)

    def issue(self, kind: str) -> Callable[[str, str], Awaitable[Creds]]:
        return {
            "tokens": self.issue_token,
            "sign-only": self.sign_only,
            "dynsec": self.issue_dynsec,
        }[kind]


@contextlib.asynccontextmanager
async def hub(root: Path, name: str, *, plugin: bool) -> AsyncIterator[Hub]:
    data = root / name
    data.mkdir(parents=True)
    broker = BenchBroker(data, plugin=plugin)
    db_url = f"sqlite:///{data / 'hub.db'}"
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        broker.process.start()
        sessions = make_sessionmaker(engine)
        admin = DynsecAdmin(
            host=HOST,
            port=broker.process.mqtt_port,
            username=ADMIN_USERNAME,
            password=broker.secrets.admin_password,
        )
        issuer = CredentialIssuer(
            admin=admin,
            signer=TokenSigner(broker.keys, issuer=DEFAULT_TOKEN_ISSUER),
            sessions=sessions,
            ttl=TTL,
            max_sessions_per_user=MAX_SESSIONS_PER_USER,
            generation=lambda: admin.generation,
        )
        async with admin, issuer:
            await admin.wait_connected(15.0)
            await admin.ensure_role(SERVICE_ROLE)
            await admin.ensure_service_client(
                username=SERVICE_USERNAME,
                password=broker.secrets.service_password,
                roles=[SERVICE_ROLE.name],
            )
            yield Hub(broker, issuer, admin, sessions)
    except Exception:
        tail = broker.log_tail()
        if tail:
            progress(f"broker log ({name}, last lines):\n{tail}")
        raise
    finally:
        engine.dispose()
        broker.process.stop()


# --- child processes ---


class Worker:
    """A ``bench.worker`` child: JSON lines in, JSON lines out."""

    def __init__(self, proc: asyncio.subprocess.Process, name: str) -> None:
        self.proc = proc
        self.name = name

    @classmethod
    async def start(cls, name: str, *args: str, env: dict[str, str] | None = None) -> Worker:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.worker",
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            limit=1 << 26,
        )
        return cls(proc, name)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def send(self, obj: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(obj, separators=(",", ":")).encode() + b"\n")

    async def drain(self) -> None:
        assert self.proc.stdin is not None
        await self.proc.stdin.drain()

    async def expect(self, kind: str, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        async with asyncio.timeout(timeout):
            while True:
                line = await self.proc.stdout.readline()
                if not line:
                    raise RuntimeError(f"worker {self.name} exited waiting for {kind!r}")
                msg: dict[str, Any] = json.loads(line)
                if msg.get("type") == kind:
                    return msg
                if msg.get("type") == "error":
                    raise RuntimeError(f"worker {self.name}: {msg.get('error')}")

    async def ask(self, cmd: str, kind: str, timeout: float = 30.0) -> dict[str, Any]:
        self.send({"cmd": cmd})
        await self.drain()
        return await self.expect(kind, timeout)

    async def close(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(Exception):
                self.send({"cmd": "close"})
                await self.drain()
                await self.expect("closed", 30.0)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.proc.wait(), 10.0)
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.proc.wait(), 5.0)


@contextlib.asynccontextmanager
async def workers(
    hub_: Hub, count: int, *, concurrency: int, nice: int = 0, latency: bool = False
) -> AsyncIterator[list[Worker]]:
    started: list[Worker] = []
    try:
        for i in range(count):
            args = [
                "sessions",
                "--port",
                str(hub_.broker.process.ws_port),
                "--concurrency",
                str(max(1, concurrency // count)),
                "--nice",
                str(nice),
            ]
            if latency:
                args.append("--latency")
            started.append(await Worker.start(f"sessions-{i}", *args))
        yield started
    finally:
        await asyncio.gather(*(w.close() for w in started))


@contextlib.asynccontextmanager
async def publisher(hub_: Hub) -> AsyncIterator[Worker]:
    w = await Worker.start(
        "publisher",
        "publish",
        "--port",
        str(hub_.broker.process.mqtt_port),
        "--username",
        SERVICE_USERNAME,
        "--client-id",
        f"bench-pub-{secrets.token_hex(3)}",
        env={"BENCH_PASSWORD": hub_.broker.secrets.service_password},
    )
    try:
        await w.expect("ready", 30.0)
        yield w
    finally:
        await w.close()


async def connect_all(
    ws: list[Worker], creds: Sequence[Creds], timeout: float
) -> list[dict[str, Any]]:
    for i, c in enumerate(creds):
        ws[i % len(ws)].send(c.spec())
    for w in ws:
        w.send({"cmd": "end"})
        await w.drain()
    return [await w.expect("connected", timeout) for w in ws]


# --- figures ---


@dataclass
class Latency:
    samples: list[float] = field(default_factory=list)

    def row(self) -> tuple[int, float, float, float]:
        s = self.samples
        return len(s), percentile(s, 50), percentile(s, 99), max(s) if s else math.nan


@dataclass
class StormResult:
    design: str
    requested: int
    issued: int = 0
    connected: int = 0
    failed: int = 0
    failures: list[str] = field(default_factory=list)
    total_s: float = math.nan
    issue_s: float = math.nan
    issue_ms: list[float] = field(default_factory=list)
    connect_ms: list[float] = field(default_factory=list)
    rss_before_kb: int = 0
    rss_after_kb: int = 0
    broker_cpu_s: float = math.nan
    cpu: dict[str, float] = field(default_factory=dict)
    wall_s: float = math.nan
    samples: list[tuple[float, float]] = field(default_factory=list)
    marks: dict[str, float] = field(default_factory=dict)
    idle: Latency = field(default_factory=Latency)
    storm: Latency = field(default_factory=Latency)
    after: Latency = field(default_factory=Latency)
    probe_lost: int = 0

    @property
    def complete(self) -> bool:
        return self.connected == self.requested

    @property
    def kb_per_session(self) -> float:
        if not self.connected:
            return math.nan
        return (self.rss_after_kb - self.rss_before_kb) / self.connected


@dataclass
class FanoutResult:
    design: str
    subscribers: int
    messages: int
    rates: list[float] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)
    lost: int = 0


@dataclass
class Report:
    storms: list[StormResult] = field(default_factory=list)
    fanouts: list[FanoutResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _num(value: float, digits: int = 1) -> str:
    return "-" if math.isnan(value) else f"{value:.{digits}f}"


def _table(header: Sequence[tuple[str, int]], rows: Sequence[Sequence[str]]) -> str:
    lines = ["  ".join(name.rjust(w) for name, w in header)]
    lines += ["  ".join(c.rjust(w) for c, (_, w) in zip(row, header, strict=True)) for row in rows]
    return "\n".join(lines)


def format_report(report: Report) -> str:
    out: list[str] = []
    storm_header = (
        ("design", 9),
        ("sessions", 8),
        ("failed", 6),
        ("total_s", 7),
        ("issue_s", 7),
        ("issue_per_s", 11),
        ("issue_p50", 9),
        ("issue_p99", 9),
        ("conn_p50", 8),
        ("conn_p99", 8),
        ("conn_max", 8),
        ("brk_cpu_s", 9),
        ("kB_per_session", 14),
    )
    rows = []
    for s in report.storms:
        rows.append(
            (
                s.design,
                f"{s.connected}" + ("" if s.complete else f"/{s.requested}*"),
                str(s.failed),
                _num(s.total_s),
                _num(s.issue_s),
                _num(s.issued / s.issue_s if s.issue_s > 0 else math.nan, 0),
                _num(percentile(s.issue_ms, 50)),
                _num(percentile(s.issue_ms, 99)),
                _num(percentile(s.connect_ms, 50)),
                _num(percentile(s.connect_ms, 99)),
                _num(max(s.connect_ms) if s.connect_ms else math.nan),
                _num(s.broker_cpu_s),
                _num(s.kb_per_session, 2),
            )
        )
    out += ["## storm: issue, connect and subscribe", _table(storm_header, rows), ""]
    lat_header = (
        ("design", 9),
        ("sessions", 8),
        ("window", 9),
        ("msgs", 6),
        ("p50_ms", 7),
        ("p99_ms", 7),
        ("max_ms", 7),
    )
    rows = []
    for s in report.storms:
        for name, lat in (("idle", s.idle), ("storm", s.storm), ("connected", s.after)):
            n, p50, p99, mx = lat.row()
            rows.append(
                (s.design, str(s.connected), name, str(n), _num(p50, 2), _num(p99, 2), _num(mx, 2))
            )
    out += ["## probe subscriber: delivery latency", _table(lat_header, rows), ""]
    cpu_header = (
        ("design", 9),
        ("sessions", 8),
        ("wall_s", 7),
        ("capacity", 8),
        ("broker", 7),
        ("api", 7),
        ("clients", 7),
        ("probe", 7),
        ("others", 7),
    )
    rows = []
    for s in report.storms:
        if not s.cpu:
            continue
        rows.append(
            (
                s.design,
                str(s.connected),
                _num(s.wall_s),
                _num(s.wall_s * (os.cpu_count() or 1)),
                *(_num(s.cpu[k]) for k in ("broker", "api", "clients", "probe", "others")),
            )
        )
    out += ["## CPU seconds during the storm", _table(cpu_header, rows), ""]
    fan_header = (
        ("design", 14),
        ("subscribers", 11),
        ("messages", 8),
        ("runs", 4),
        ("deliveries_per_s", 16),
        ("min", 8),
        ("max", 8),
        ("brk_us_per_delivery", 19),
        ("lost", 4),
    )
    rows = []
    for f in report.fanouts:
        rows.append(
            (
                f.design,
                str(f.subscribers),
                str(f.messages),
                str(len(f.rates)),
                _num(statistics.median(f.rates) if f.rates else math.nan, 0),
                _num(min(f.rates) if f.rates else math.nan, 0),
                _num(max(f.rates) if f.rates else math.nan, 0),
                _num(statistics.median(f.cpu_us) if f.cpu_us else math.nan, 2),
                str(f.lost),
            )
        )
    out += ["## fan-out: one publisher, QoS 1 (medians of the runs)", _table(fan_header, rows)]
    by = {f.design: f for f in report.fanouts if f.rates}
    if "tokens" in by and "dynsec" in by:
        ratio = statistics.median(by["tokens"].rates) / statistics.median(by["dynsec"].rates)
        out.append(f"tokens/dynsec deliveries per second: {ratio:.3f}")
    if "tokens" in by and "dynsec-only" in by:
        ratio = statistics.median(by["tokens"].rates) / statistics.median(by["dynsec-only"].rates)
        out.append(f"tokens/dynsec-only deliveries per second: {ratio:.3f}")
    out += ["", LEGEND]
    out += [f"# note: {n}" for n in report.notes]
    return "\n".join(out)


LEGEND = """\
# designs: tokens = CredentialIssuer (ES256 token + SQLite row) and the token plugin;
#   sign-only = the same tokens signed without the database row (the broker side
#   alone); dynsec = the old design, a dynsec client per session, no token plugin
# storm: sessions connected and subscribed (* = cut short by the deadline); failed =
#   connects or subscribes refused or timed out; total_s from the first issuance to the
#   last SUBACK; issue_s/issue_per_s/issue_p50/p99 (ms) issuance, concurrent;
#   conn_* (ms) TCP connect to SUBACK per session; brk_cpu_s broker CPU during the
#   storm; kB_per_session broker VmRSS growth / sessions connected
# probe: QoS 1 deliveries to an already connected token (or dynsec) subscriber of
#   another tenant, send time in the payload; idle = before the storm, storm = during
#   it, connected = after it with every session still connected
# CPU: seconds of CPU time from the storm's start until its last session subscribed;
#   capacity = wall time x cores; api = this process (issuer, SQLite, dynsec admin);
#   clients = the storm's client processes; probe = probe subscriber and publisher;
#   others = the rest of the machine (other jobs)
# fan-out: deliveries/s from the first publish to the last delivery; brk_us = broker
#   CPU per delivery; tokens/dynsec on one broker with the plugin, dynsec-only on a
#   broker without it"""


# --- the phases ---


@dataclass(frozen=True)
class Options:
    sessions: int
    before: tuple[int, ...]
    concurrency: int
    workers: int
    issuers: int
    tenants: int
    nice: int
    rate: float
    window_s: float
    fan_subscribers: int
    fan_messages: int
    fan_repeats: int
    fan_workers: int
    deadline_s: float
    before_deadline_s: float
    dump: Path | None = None
    sign_only: bool = True


class Bench:
    def __init__(self, opts: Options, root: Path) -> None:
        self.opts = opts
        self.root = root
        self.deadline = time.monotonic() + opts.deadline_s

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    async def storm(self, kind: str, n: int, report: Report) -> None:
        o = self.opts
        result = StormResult(design=kind, requested=n)
        report.storms.append(result)
        name = f"storm-{kind}-{n}"
        stop_at = time.monotonic() + min(
            self.remaining(), o.before_deadline_s if kind == "dynsec" else math.inf
        )
        async with hub(self.root, name, plugin=kind != "dynsec") as h:
            issue = h.issue(kind)
            probe_creds = await issue(PROBE_TENANT, "probe-1")
            async with (
                workers(h, 1, concurrency=1, latency=True) as (probe,),
                publisher(h) as pub,
                workers(h, o.workers, concurrency=o.concurrency, nice=o.nice) as storm_ws,
            ):
                (probe_report,) = await connect_all([probe], [probe_creds], 30.0)
                if probe_report["nfailed"]:
                    raise RuntimeError(f"probe subscriber failed: {probe_report['failures']}")
                pub.send({"cmd": "rate", "topic": PROBE_TOPIC, "rate": o.rate, "max_seconds": 3600})
                await pub.drain()
                t_idle = time.monotonic()
                await asyncio.sleep(o.window_s)
                result.rss_before_kb = h.broker.rss_kb()
                cpu0 = h.broker.cpu_seconds()
                meter = CpuMeter(h.broker.pid, [w.pid for w in storm_ws], [probe.pid, pub.pid])
                meter.begin()
                progress(f"{name}: storm of {n} sessions, {o.concurrency} connecting at once")
                t0 = time.monotonic()
                await self._issue_and_connect(h, kind, n, storm_ws, result, stop_at)
                reports = [
                    await w.expect("connected", max(60.0, stop_at - time.monotonic() + 60.0))
                    for w in storm_ws
                ]
                t_end = max([r["t_last"] for r in reports] + [t0])
                result.broker_cpu_s = h.broker.cpu_seconds() - cpu0
                result.cpu = meter.used()
                result.wall_s = time.monotonic() - t0
                result.total_s = t_end - t0
                for r in reports:
                    result.connected += int(r["ok"])
                    result.failed += int(r["nfailed"])
                    result.failures += list(r["failures"])
                    result.connect_ms += [float(v) for v in r["connect_ms"]]
                progress(
                    f"{name}: {result.connected} connected, {result.failed} failed "
                    f"in {result.total_s:.1f} s"
                )
                await asyncio.sleep(o.window_s)
                result.rss_after_kb = h.broker.rss_kb()
                t_after = time.monotonic()
                stopped = await pub.ask("stop", "stopped")
                samples = (await probe.ask("latencies", "latencies"))["samples"]
                result.probe_lost = int(stopped["sent"]) - len(samples)
                result.samples = [(float(a) - t0, float(b)) for a, b in samples]
                result.marks = {"idle": t_idle - t0, "end": t_end - t0, "after": t_after - t0}
                for sent, lat in samples:
                    if sent < t_idle:
                        continue
                    window = (
                        result.idle
                        if sent < t0
                        else result.storm
                        if sent <= t_end
                        else result.after
                        if sent <= t_after
                        else None
                    )
                    if window is not None:
                        window.samples.append(float(lat))
                alive = sum([int((await w.ask("stats", "stats"))["live"]) for w in storm_ws])
                if alive != result.connected:
                    report.notes.append(
                        f"{name}: {result.connected - alive} sessions were disconnected "
                        "after connecting"
                    )
        for f in result.failures[:5]:
            progress(f"{name}: failure: {f}")
        if result.probe_lost:
            report.notes.append(f"{name}: probe lost {result.probe_lost} message(s)")
        if not result.complete and time.monotonic() >= stop_at:
            report.notes.append(f"{name}: deadline reached after {result.issued} issuances")

    async def _issue_and_connect(
        self,
        h: Hub,
        kind: str,
        n: int,
        storm_ws: list[Worker],
        result: StormResult,
        stop_at: float,
    ) -> None:
        """Issue ``n`` credentials with ``issuers`` concurrent callers and hand each to
        a worker as soon as it exists (the browser connects right after its request)."""
        issue = h.issue(kind)
        next_index = 0
        t0 = time.monotonic()
        mark = t0

        async def caller() -> None:
            nonlocal next_index, mark
            while next_index < n and time.monotonic() < stop_at:
                i = next_index
                next_index += 1
                user = i // PER_USER
                t = time.perf_counter()
                creds = await issue(f"t{user % self.opts.tenants}", f"u-{user}")
                result.issue_ms.append((time.perf_counter() - t) * 1000.0)
                result.issued += 1
                w = storm_ws[i % len(storm_ws)]
                w.send(creds.spec())
                if result.issued % PROGRESS_EVERY == 0:
                    now = time.monotonic()
                    progress(
                        f"  issued {result.issued}/{n} ({PROGRESS_EVERY / (now - mark):.0f}/s "
                        f"recently, {now - t0:.1f} s)"
                    )
                    mark = now
                    await asyncio.gather(*(x.drain() for x in storm_ws))

        await asyncio.gather(*(caller() for _ in range(self.opts.issuers)))
        result.issue_s = time.monotonic() - t0
        for w in storm_ws:
            w.send({"cmd": "end"})
            await w.drain()

    async def fanout(self, report: Report) -> None:
        o = self.opts
        k, m = o.fan_subscribers, o.fan_messages
        sets: list[tuple[FanoutResult, Hub, Worker, list[Worker], str]] = []
        async with contextlib.AsyncExitStack() as stack:
            with_plugin = await stack.enter_async_context(hub(self.root, "fanout", plugin=True))
            without = await stack.enter_async_context(
                hub(self.root, "fanout-dynsec-only", plugin=False)
            )
            pub_with = await stack.enter_async_context(publisher(with_plugin))
            pub_without = await stack.enter_async_context(publisher(without))
            for design, h, pub, kind, tenant in (
                ("tokens", with_plugin, pub_with, "tokens", "fan-tokens"),
                ("dynsec", with_plugin, pub_with, "dynsec", "fan-dynsec"),
                ("dynsec-only", without, pub_without, "dynsec", "fan-only"),
            ):
                issue = h.issue(kind)
                creds = [await issue(tenant, f"u-{i // PER_USER}") for i in range(k)]
                ws = await stack.enter_async_context(
                    workers(h, o.fan_workers, concurrency=o.concurrency)
                )
                reports = await connect_all(ws, creds, 120.0)
                failed = sum(int(r["nfailed"]) for r in reports)
                if failed:
                    raise RuntimeError(f"fan-out {design}: {failed} subscribers failed")
                result = FanoutResult(design, k, m)
                report.fanouts.append(result)
                sets.append((result, h, pub, ws, FAN_TOPIC.format(tenant=tenant)))
            progress(f"fan-out: {k} subscribers per design, {m} messages, {o.fan_repeats} runs")
            for run in range(o.fan_repeats):
                for result, h, pub, ws, topic in sets:
                    if self.remaining() <= 0:
                        raise DeadlineReachedError("deadline reached during fan-out")
                    await self._fan_run(result, h, pub, ws, topic)
                    progress(
                        f"  run {run + 1} {result.design}: {result.rates[-1]:.0f} deliveries/s, "
                        f"{result.cpu_us[-1]:.2f} us broker CPU each"
                    )

    async def _fan_run(
        self, result: FanoutResult, h: Hub, pub: Worker, ws: list[Worker], topic: str
    ) -> None:
        async def counts() -> list[dict[str, Any]]:
            return [await w.ask("stats", "stats") for w in ws]

        before = sum(int(s["count"]) for s in await counts())
        want = before + result.subscribers * result.messages
        cpu0 = h.broker.cpu_seconds()
        pub.send({"cmd": "burst", "topic": topic, "count": result.messages})
        await pub.drain()
        burst = await pub.expect("burst", 180.0)
        give_up = time.monotonic() + 60.0
        while True:
            stats = await counts()
            total = sum(int(s["count"]) for s in stats)
            if total >= want or time.monotonic() > give_up:
                break
            await asyncio.sleep(0.05)
        cpu = h.broker.cpu_seconds() - cpu0
        delivered = total - before
        result.lost += want - total
        last = max(float(s["last"]) for s in stats)
        result.rates.append(delivered / max(last - float(burst["t0"]), 1e-9))
        result.cpu_us.append(cpu * 1e6 / max(delivered, 1))

    async def run(self, report: Report) -> None:
        await self.storm("tokens", self.opts.sessions, report)
        if self.opts.sign_only:
            await self.storm("sign-only", self.opts.sessions, report)
        for n in self.opts.before:
            if self.remaining() <= 0:
                raise DeadlineReachedError(f"deadline reached before the dynsec storm of {n}")
            await self.storm("dynsec", n, report)
        if self.opts.fan_repeats:
            await self.fanout(report)


# --- command line ---


def _counts(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(p) for p in text.split(",") if p.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of integers: {text!r}") from None
    if any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError("counts must be positive")
    return values


def parse_args(argv: Sequence[str] | None) -> Options:
    p = argparse.ArgumentParser(
        prog="python -m bench.sessions",
        description="WebSocket session storm, delivery latency, fan-out and memory: "
        "broker tokens against dynsec clients, one run.",
    )
    p.add_argument("--sessions", type=int, default=10_000, help="token storm size (10000)")
    p.add_argument(
        "--before",
        type=_counts,
        default=(2000, 5000),
        help="dynsec storm sizes, comma-separated, empty for none (2000,5000)",
    )
    p.add_argument("--concurrency", type=int, default=200, help="connects in flight (200)")
    p.add_argument("--workers", type=int, default=4, help="client processes for the storm (4)")
    p.add_argument(
        "--issuers",
        type=int,
        default=4,
        help="concurrent issuance calls (4; more only lengthens SQLite's lock waits)",
    )
    p.add_argument("--tenants", type=int, default=4, help="tenants of the storm's sessions (4)")
    p.add_argument(
        "--nice",
        type=int,
        default=10,
        help="niceness of the storm's client processes (10): they stand in for browsers "
        "on other machines; 0 lets them compete with the broker",
    )
    p.add_argument("--rate", type=float, default=200.0, help="probe messages per second (200)")
    p.add_argument("--window", type=float, default=5.0, help="seconds before/after a storm (5)")
    p.add_argument("--fan-subscribers", type=int, default=200)
    p.add_argument("--fan-messages", type=int, default=1000)
    p.add_argument("--fan-repeats", type=int, default=3, help="runs per design; 0 skips (3)")
    p.add_argument("--fan-workers", type=int, default=2, help="client processes per design (2)")
    p.add_argument("--deadline", type=float, default=1500.0, help="overall budget, s (1500)")
    p.add_argument(
        "--before-deadline",
        type=float,
        default=300.0,
        help="budget of each dynsec storm, s (300): it slows down as it grows",
    )
    p.add_argument(
        "--no-sign-only",
        action="store_true",
        help="skip the storm whose tokens are signed without the issuer's database work",
    )
    p.add_argument(
        "--dump",
        type=Path,
        default=None,
        help="write the probe's latencies (seconds from the storm's start, ms) as JSON",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 300 sessions, dynsec 300, fan-out 50 x 200, short windows",
    )
    ns = p.parse_args(argv)
    if ns.quick:
        ns.sessions, ns.before, ns.window = 300, (300,), 1.0
        ns.fan_subscribers, ns.fan_messages, ns.workers = 50, 200, 2
    if not 1 <= ns.sessions <= 50_000:
        p.error("--sessions must be between 1 and 50000")
    if not 1 <= ns.concurrency <= 5000 or not 1 <= ns.workers <= 32:
        p.error("--concurrency 1..5000, --workers 1..32")
    if not 0 < ns.deadline <= 24 * 3600:
        p.error("--deadline must be positive (seconds, at most a day)")
    return Options(
        sessions=ns.sessions,
        before=tuple(ns.before),
        concurrency=ns.concurrency,
        workers=ns.workers,
        issuers=max(1, ns.issuers),
        tenants=max(1, ns.tenants),
        nice=ns.nice,
        rate=ns.rate,
        window_s=ns.window,
        fan_subscribers=ns.fan_subscribers,
        fan_messages=ns.fan_messages,
        fan_repeats=max(0, ns.fan_repeats),
        fan_workers=max(1, ns.fan_workers),
        deadline_s=ns.deadline,
        before_deadline_s=ns.before_deadline,
        dump=ns.dump,
        sign_only=not ns.no_sign_only,
    )


async def run_bench(opts: Options, root: Path, report: Report) -> None:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    if task is not None:  # SIGTERM: stop like Ctrl-C, so brokers and workers are stopped
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        async with asyncio.timeout(opts.deadline_s + 300.0):  # backstop for a hang
            await Bench(opts, root).run(report)
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(name)s: %(message)s")
    # aiomqtt warns about every queued publish of the admin client under concurrent
    # dynsec issuance; that queueing is what the dynsec storm measures.
    logging.getLogger("mqtt").setLevel(logging.ERROR)
    fds = raise_fd_limit()
    if fds < opts.sessions + 1000:
        print(f"the fd limit ({fds}) is too low for {opts.sessions} sessions", file=sys.stderr)
        return 1
    report = Report()
    started = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="hub-bench-") as tmp:
        status = run_to_status(lambda: asyncio.run(run_bench(opts, Path(tmp), report)))
    if opts.dump is not None:
        dump = [
            {"design": s.design, "sessions": s.connected, "marks": s.marks, "samples": s.samples}
            for s in report.storms
        ]
        opts.dump.write_text(json.dumps(dump), encoding="utf-8")
    if status == 0 and any(s.failed for s in report.storms):
        status = 2
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(
        f"# sessions benchmark, {version()}, {os.cpu_count()} cores, "
        f"{started:%Y-%m-%d %H:%M} UTC, load average {load} at the end\n"
        f"# {opts.concurrency} connecting at once over {opts.workers} client processes "
        f"(nice {opts.nice}), {opts.issuers} concurrent issuances, {PER_USER} sessions per "
        f"user over {opts.tenants} tenants, probe {opts.rate:.0f} msg/s, SQLite (temp file)\n"
    )
    print(format_report(report))
    return status


if __name__ == "__main__":
    sys.exit(main())
