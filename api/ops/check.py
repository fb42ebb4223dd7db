"""``hub check``: is this installation able to run? One line per check, OK, WARN or
FAIL; exit 0 when nothing failed, 1 otherwise. Every check has a timeout, so the
whole command takes a few seconds at most.

It changes nothing: it creates no database, secret, key or JWKS file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import aiomqtt
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from api.migrate import alembic_config
from api.ops.common import FAILED, OK, CommandError, load_settings, open_database
from api.runtime import broker_tls_context
from api.settings import Settings
from hub.broker_tokens import KeyRing
from hub.db import utcnow
from hub.mqtt import login_accepted
from hub.outbox import outbox_stats

Status = Literal["OK", "WARN", "FAIL"]
TIMEOUT = 3.0  # seconds, per network check
CLOCK_SKEW_WARN = 2.0  # seconds between this machine and the database server
BACKLOG_WARN = 30.0  # seconds the oldest unpublished event may wait
BACKLOG_FAIL = 300.0


@dataclass(frozen=True, slots=True)
class Result:
    name: str
    status: Status
    detail: str


class _Report:
    def __init__(self) -> None:
        self.results: list[Result] = []

    def add(self, name: str, status: Status, detail: str) -> None:
        result = Result(name, status, detail)
        self.results.append(result)
        print(f"{status:<4}  {name:<10}  {detail}", flush=True)

    @property
    def failed(self) -> bool:
        return any(r.status == "FAIL" for r in self.results)


def _check_config(report: _Report) -> Settings | None:
    try:
        settings = load_settings()
    except CommandError as exc:
        report.add("config", "FAIL", str(exc))
        return None
    mode = "production rules apply" if not settings.development else "development"
    report.add("config", "OK", f"{mode}; data directory {settings.data_dir}")
    return settings


def _check_database(report: _Report, settings: Settings) -> Engine | None:
    try:
        engine, _ = open_database(settings)
    except CommandError as exc:
        report.add("database", "FAIL", str(exc))
        return None
    try:
        with engine.connect() as conn:
            current = set(MigrationContext.configure(conn).get_current_heads())
    except Exception as exc:
        engine.dispose()
        report.add("database", "FAIL", f"unreachable: {type(exc).__name__}: {_first_line(exc)}")
        return None
    report.add("database", "OK", f"{engine.dialect.name} reachable")
    heads = set(ScriptDirectory.from_config(alembic_config(str(engine.url))).get_heads())
    if current == heads:
        report.add("migrations", "OK", f"at head {', '.join(sorted(heads))}")
    else:
        have = ", ".join(sorted(current)) or "none"
        report.add("migrations", "FAIL", f"at {have}, head is {', '.join(sorted(heads))}")
    return engine


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else ""


def _check_clock(report: _Report, engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        report.add("clock", "OK", "SQLite runs on this machine's clock")
        return
    with engine.connect() as conn:
        before = time.time()
        server: datetime = conn.execute(text("SELECT now()")).scalar_one()
        after = time.time()
    # now() is the transaction's start: compare with the middle of the round trip.
    skew = server.astimezone(UTC).timestamp() - (before + after) / 2
    allowed = CLOCK_SKEW_WARN + (after - before) / 2
    status: Status = "WARN" if abs(skew) > allowed else "OK"
    report.add("clock", status, f"{skew:+.2f} s from the database server's clock")


def _check_backlog(report: _Report, engine: Engine) -> None:
    with Session(engine) as session:
        stats = outbox_stats(session)
    if stats.oldest_unpublished_at is None:
        report.add("relay", "OK", "nothing waits to be published")
        return
    age = (utcnow() - stats.oldest_unpublished_at).total_seconds()
    status: Status = "FAIL" if age >= BACKLOG_FAIL else "WARN" if age >= BACKLOG_WARN else "OK"
    report.add(
        "relay",
        status,
        f"{stats.unpublished} unpublished, the oldest {age:.1f} s old"
        + ("" if status == "OK" else " (is an api with its relay running?)"),
    )


def _admin_password(settings: Settings) -> str | None:
    if settings.broker_admin_password:
        return settings.broker_admin_password
    path = settings.data_dir / "secrets" / "dynsec-admin"
    return path.read_text().strip() if path.exists() else None


def _check_broker(report: _Report, settings: Settings) -> None:
    where = f"{settings.mqtt_host}:{settings.mqtt_port}"
    try:
        with socket.create_connection((settings.mqtt_host, settings.mqtt_port), timeout=TIMEOUT):
            pass
    except OSError as exc:
        report.add("broker", "FAIL", f"no TCP connection to {where}: {exc}")
        return
    password = _admin_password(settings)
    if password is None:
        report.add("broker", "FAIL", "no admin password (HUB_BROKER_ADMIN_PASSWORD or data dir)")
        return

    async def login() -> bool:
        async with asyncio.timeout(TIMEOUT + 1):
            return await login_accepted(
                host=settings.mqtt_host,
                port=settings.mqtt_port,
                username=settings.broker_admin_username,
                password=password,
                timeout=TIMEOUT,
                tls_context=broker_tls_context(settings),
            )

    try:
        accepted = asyncio.run(login())
    except (aiomqtt.MqttError, TimeoutError, OSError) as exc:
        report.add("broker", "FAIL", f"MQTT login to {where} failed: {exc or type(exc).__name__}")
        return
    if accepted:
        report.add("broker", "OK", f"{where} accepts the admin account")
    else:
        report.add("broker", "FAIL", f"{where} refuses the admin account's password")


def _check_keys(report: _Report, settings: Settings) -> None:
    if settings.broker_signing_key_file is not None:
        if not settings.broker_signing_key_file.exists():
            report.add("keys", "FAIL", f"{settings.broker_signing_key_file} is missing")
            return
        ring = KeyRing(key_file=settings.broker_signing_key_file)
    else:
        if not any(settings.signing_keys_dir.glob("key-*.pem")):
            report.add("keys", "FAIL", f"no signing keys in {settings.signing_keys_dir}")
            return
        ring = KeyRing(directory=settings.signing_keys_dir)
    path = settings.resolved_jwks_file
    try:
        published = json.loads(path.read_text())["keys"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        report.add("keys", "FAIL", f"the broker's JWKS {path} is unreadable: {exc}")
        return
    ours = {k["kid"]: k for k in ring.jwks()["keys"]}
    theirs = {k.get("kid"): k for k in published if isinstance(k, dict)}
    unknown = [kid for kid, key in ours.items() if theirs.get(kid) != key]
    if unknown:
        report.add(
            "keys",
            "FAIL",
            f"{path} lacks key(s) {', '.join(unknown)}: the broker would refuse their tokens",
        )
    elif set(theirs) - set(ours):
        report.add("keys", "WARN", f"{path} also lists keys the key ring no longer has")
    else:
        report.add("keys", "OK", f"{len(ours)} key(s), active {ring.active.kid}; {path} matches")


def _guard(report: _Report, name: str, check: Callable[[], Any]) -> None:
    """A check that breaks unexpectedly is a FAIL line, not a traceback."""
    try:
        check()
    except Exception as exc:
        report.add(name, "FAIL", f"{type(exc).__name__}: {_first_line(exc)}")


def cmd_check(args: argparse.Namespace) -> int:
    report = _Report()
    settings = _check_config(report)
    if settings is None:
        return FAILED
    engine = None

    def database() -> None:
        nonlocal engine
        engine = _check_database(report, settings)

    _guard(report, "database", database)
    if engine is not None:
        db: Engine = engine
        _guard(report, "clock", lambda: _check_clock(report, db))
        _guard(report, "relay", lambda: _check_backlog(report, db))
        db.dispose()
    _guard(report, "broker", lambda: _check_broker(report, settings))
    _guard(report, "keys", lambda: _check_keys(report, settings))
    return FAILED if report.failed else OK
