"""Everything the api holds while it runs: engine, verifier, broker admin, issuer,
relay. Built from Settings in the app's lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import anyio.to_thread
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from api.domain.alert_routing import RoutingConfig, any_pending, route_committed
from api.domain.appointments import Clinic
from api.domain.board import refresh_day
from api.domain.kiosks import ArrivalWindow, RateLimit, prune_answers
from api.domain.notifications import AlertPolicy, any_due, process_due
from api.kiosk_responder import KioskResponder
from api.models import Patient
from api.settings import Settings
from hub import metrics
from hub.audit import prune_audit
from hub.broker_admin import DynsecAdmin
from hub.broker_tokens import AccessTokenVerifier, KeyRing, TokenSigner
from hub.credentials import CredentialIssuer
from hub.db import driver_cursor, make_engine, make_sessionmaker, placeholder, utcnow
from hub.mosquitto import ADMIN_ROLE, SERVICE_ROLE, BrokerLayout
from hub.outbox import add_commit_listener, prune_published, remove_commit_listener
from hub.relay import Relay
from hub.tls import client_context
from hub.tokens import TokenVerifier
from hub.writer import EventWriter

log = logging.getLogger("api.runtime")


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    read_sessions: sessionmaker[Session]
    verifier: TokenVerifier
    admin: DynsecAdmin
    issuer: CredentialIssuer
    keys: KeyRing
    # Partners' access tokens for GET /events: signed and verified with the broker keys.
    signer: TokenSigner
    access_verifier: AccessTokenVerifier
    relay: Relay
    writer: EventWriter
    broker_ready: asyncio.Event
    alert_policy: AlertPolicy
    routing: RoutingConfig
    kiosk_responder: KioskResponder | None = None


def build_verifier(settings: Settings) -> TokenVerifier:
    key: str | None = None
    algorithms = settings.jwt_algorithms
    if settings.jwt_jwks_url is None:
        if settings.jwt_public_key or settings.jwt_public_key_file:
            key = settings.jwt_public_key or Path(settings.jwt_public_key_file or "").read_text()
        else:
            key = settings.resolved_jwt_secret
            algorithms = ["HS256"]
            if key is None:
                raise ValueError("no way to verify tokens is configured")
    return TokenVerifier(
        algorithms=algorithms,
        key=key,
        jwks_url=settings.jwt_jwks_url,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        roles_claim=settings.jwt_roles_claim,
        role_map=settings.jwt_role_map,
    )


def key_ring(settings: Settings) -> KeyRing:
    """The broker token signing keys: a configured PEM file (shared by every api
    process), or keys generated into the data directory."""
    if settings.broker_signing_key_file:
        return KeyRing(
            key_file=settings.broker_signing_key_file, jwks_file=settings.resolved_jwks_file
        )
    return KeyRing(directory=settings.signing_keys_dir, jwks_file=settings.resolved_jwks_file)


def known_patients(conn: Connection, pairs: Collection[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which (tenant, patient id) pairs exist: the event writer's check, one query on
    the driver's cursor (compiling an IN list per group cost more than the query)."""
    if not pairs:
        return set()
    mark = placeholder(conn.dialect)
    rows = ", ".join([f"({mark}, {mark})"] * len(pairs))
    sql = f"SELECT tenant, id FROM {Patient.__tablename__} WHERE (tenant, id) IN (VALUES {rows})"  # noqa: S608 - placeholders only
    with driver_cursor(conn) as cursor:
        cursor.execute(sql, [value for pair in pairs for value in pair])
        return {(tenant, pid) for tenant, pid in cursor.fetchall()}


def alert_policy(settings: Settings) -> AlertPolicy:
    return AlertPolicy(
        resend_after=timedelta(seconds=settings.critical_resend_seconds),
        max_resends=settings.critical_max_resends,
        escalate_after=timedelta(seconds=settings.critical_escalate_seconds),
    )


def broker_tls_context(settings: Settings) -> ssl.SSLContext | None:
    """How the api's own broker connections verify a TLS broker (None: plaintext)."""
    return client_context(settings.tls_ca_file) if settings.tls_enabled else None


def kiosk_responder(
    settings: Settings, sessions: sessionmaker[Session], service_password: str, ready: asyncio.Event
) -> KioskResponder:
    """Answers kiosk check-ins as the relay's broker account (docs/architecture.md)."""
    return KioskResponder(
        sessions=sessions,
        clinic=Clinic(settings.clinic_timezone),
        host=settings.mqtt_host,
        port=settings.mqtt_port,
        username=settings.broker_service_username,
        password=service_password,
        window=ArrivalWindow(
            early=timedelta(minutes=settings.kiosk_arrival_early_minutes),
            late=timedelta(minutes=settings.kiosk_arrival_late_minutes),
        ),
        limit=RateLimit(
            max_failures=settings.kiosk_max_failures,
            window=timedelta(seconds=settings.kiosk_failure_window_seconds),
            lockout=timedelta(seconds=settings.kiosk_lockout_seconds),
        ),
        ready=ready,
        tls_context=broker_tls_context(settings),
    )


def broker_passwords(settings: Settings) -> tuple[str, str]:
    if settings.broker_admin_password and settings.broker_service_password:
        return settings.broker_admin_password, settings.broker_service_password
    secrets = BrokerLayout(settings.data_dir).secrets()
    return (
        settings.broker_admin_password or secrets.admin_password,
        settings.broker_service_password or secrets.service_password,
    )


def broker_admin(
    settings: Settings,
    *,
    timeout: float = 5.0,
    sys_topics: Sequence[str] = (),
    on_sys: Callable[[str, bytes], None] | None = None,
) -> DynsecAdmin:
    """The broker's admin connection (Dynamic Security and the token plugin's
    revocations), as the api and the operator's commands use it."""
    admin_password, _ = broker_passwords(settings)
    return DynsecAdmin(
        host=settings.mqtt_host,
        port=settings.mqtt_port,
        username=settings.broker_admin_username,
        password=admin_password,
        timeout=timeout,
        tls_context=broker_tls_context(settings),
        sys_topics=sys_topics,
        on_sys=on_sys,
    )


def credential_issuer(
    settings: Settings,
    *,
    admin: DynsecAdmin,
    signer: TokenSigner,
    sessions: sessionmaker[Session],
) -> CredentialIssuer:
    return CredentialIssuer(
        admin=admin,
        signer=signer,
        sessions=sessions,
        ttl=timedelta(seconds=settings.session_ttl_seconds),
        max_sessions_per_user=settings.max_sessions_per_user,
        generation=lambda: admin.generation,
    )


async def _bootstrap_broker(rt: Runtime, service_password: str) -> None:
    """Idempotent, at every start: tighten the default ACLs and make sure the relay's
    account exists and takes the configured password (set only if the broker refuses
    it, so other api processes' relays stay connected). Waits for a broker that is down."""
    while True:
        try:
            await rt.admin.wait_connected(timeout=3600)
            # A data directory from before the token plugin lacks its control topic.
            await rt.admin.ensure_role(ADMIN_ROLE)
            await rt.admin.set_default_acl_access(
                {
                    "publishClientSend": False,
                    "publishClientReceive": False,
                    "subscribe": False,
                    "unsubscribe": True,
                }
            )
            await rt.admin.ensure_role(SERVICE_ROLE)
            await rt.admin.ensure_service_client(
                username=rt.settings.broker_service_username,
                password=service_password,
                roles=[SERVICE_ROLE.name],
            )
            await _remove_dynsec_sessions(rt.admin)
            rt.broker_ready.set()
            log.info("broker bootstrap done")
            return
        except Exception:
            log.warning("broker bootstrap failed; retrying", exc_info=True)
            await asyncio.sleep(1.0)


async def _remove_dynsec_sessions(admin: DynsecAdmin) -> None:
    """Before broker tokens, each session was a Dynamic Security client (`s.<clientId>`)
    with roles `tenant.<t>` and `user.<t>.<sub>`. A broker upgraded from then still holds
    them, and nothing would ever expire them: delete them (deleting a client closes its
    connection). Idempotent; a no-op on every later start."""
    clients = [c for c in await admin.list_clients() if c.startswith("s.")]
    roles = [r for r in await admin.list_roles() if r.startswith(("tenant.", "user."))]
    for name in clients:
        await admin.delete_client(name)
    for name in roles:
        await admin.delete_role(name)
    if clients or roles:
        log.info("removed %d dynsec session clients and %d roles", len(clients), len(roles))


async def _prune_loop(rt: Runtime) -> None:
    keep = timedelta(days=rt.settings.replay_retention_days)
    keep_audit = timedelta(days=rt.settings.audit_retention_days)

    def prune() -> tuple[int, int, int]:
        with rt.sessions.begin() as session:
            removed = prune_published(session, keep)
        with rt.sessions.begin() as session:
            answers = prune_answers(session)
        with rt.sessions.begin() as session:
            audited = prune_audit(session, keep_audit)
        return removed, answers, audited

    while True:
        try:
            if not rt.relay.leading:  # the active relay's process prunes for everyone
                await asyncio.sleep(60)
                continue
            removed, answers, audited = await anyio.to_thread.run_sync(prune)
            forgotten = await rt.issuer.prune(keep)
            if removed or forgotten or answers or audited:
                log.info(
                    "pruned %d events, %d ended sessions, %d kiosk answers and %d audit rows",
                    removed,
                    forgotten,
                    answers,
                    audited,
                )
        except Exception:
            log.warning("pruning failed", exc_info=True)
        await asyncio.sleep(3600)


async def _alert_loop(rt: Runtime) -> None:
    """Re-send and escalate unacknowledged critical alerts when they are due. Runs in
    every api process; ``process_due`` keeps two of them off the same alert."""

    def work() -> int:
        with rt.read_sessions() as session:
            if not any_due(session):
                return 0
        with rt.sessions() as session:
            return process_due(session, rt.alert_policy)

    while True:
        try:
            while await anyio.to_thread.run_sync(work):
                pass  # a full batch: there may be more due right now
        except Exception:
            log.warning("alert re-send/escalation failed; retrying", exc_info=True)
        await asyncio.sleep(rt.settings.notification_tick_seconds)


async def _alert_router_loop(rt: Runtime) -> None:
    """Route committed alerting events that no route routed (POST /events) by the
    tenants' rules. Every process may run it: the per-tenant cursor row is locked while
    a pass routes, so two passes never route one event (api.domain.alert_routing). It
    does not wait for relay leadership, which follows the broker connection: an alert
    is stored and listed even while the broker is away."""
    wake = asyncio.Event()
    loop = asyncio.get_running_loop()

    def committed() -> None:  # any thread: this process committed events
        loop.call_soon_threadsafe(wake.set)

    def work() -> int:
        with rt.read_sessions() as session:
            if not any_pending(session):
                return 0
        with rt.sessions() as session:
            return route_committed(session, rt.routing)

    add_commit_listener(committed)
    try:
        while True:
            wake.clear()
            try:
                while await anyio.to_thread.run_sync(work):
                    pass
            except Exception:
                log.warning("alert routing failed; retrying", exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), rt.settings.alert_router_tick_seconds)
    finally:
        remove_commit_listener(committed)


async def _board_loop(rt: Runtime, clinic: Clinic) -> None:
    """Publish today's board when this process's relay becomes the active one (at
    start, or on taking over), then again as each clinic day begins."""

    def refresh(day: date) -> int:
        with rt.sessions() as session:
            return refresh_day(session, clinic, day)

    done: date | None = None
    standby_since: float | None = None
    while True:
        if not rt.relay.leading:  # another process's relay publishes: it refreshes
            now = asyncio.get_running_loop().time()
            standby_since = standby_since or now
            # A relay that only reconnected to the broker keeps its board; one that
            # stood by a while refreshes when it takes over.
            if now - standby_since > 60:
                done = None
            await asyncio.sleep(0.5)
            continue
        standby_since = None
        today = clinic.today()
        if today != done:
            try:
                count = await anyio.to_thread.run_sync(refresh, today)
                log.info("published %d snapshots of %s's board", count, today)
                done = today
            except Exception:
                log.warning("board refresh failed; retrying", exc_info=True)
                await asyncio.sleep(5)
                continue
        midnight = clinic.day_bounds(today)[1]
        await asyncio.sleep(min(3600.0, max(0.5, (midnight - utcnow()).total_seconds() + 0.5)))


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Runtime]:
    url = settings.resolved_database_url
    # As many connections as threads that use them, kept open: anyio's 40, the event
    # writer's one, the relay's two, and a margin. Overflow connections are closed when
    # returned, so a pool smaller than the load opened a new PostgreSQL connection
    # every few requests.
    pool = {} if url.startswith("sqlite") else {"pool_size": 48, "max_overflow": 0}
    engine = make_engine(url, **pool)
    sessions = make_sessionmaker(engine)
    read_sessions = make_sessionmaker(engine, read_only=True)
    _, service_password = broker_passwords(settings)
    # Connected clients and message rates for GET /metrics, from the broker's $SYS.
    admin = broker_admin(
        settings, sys_topics=list(metrics.BROKER_SYS_GAUGES), on_sys=metrics.broker_sys_value
    )
    keys = key_ring(settings)
    keys.write_jwks(settings.resolved_jwks_file)
    signer = TokenSigner(keys, issuer=settings.broker_token_issuer)
    issuer = credential_issuer(settings, admin=admin, signer=signer, sessions=sessions)
    writer = EventWriter(
        engine, known_patients=known_patients, max_pending=settings.writer_max_pending
    )
    relay = Relay(
        sessions=sessions,
        read_sessions=read_sessions,
        host=settings.mqtt_host,
        port=settings.mqtt_port,
        username=settings.broker_service_username,
        password=service_password,
        poll_interval=settings.relay_poll_interval_seconds,
        marker=writer.submit_marks,
        tls_context=broker_tls_context(settings),
    )
    rt = Runtime(
        settings=settings,
        engine=engine,
        sessions=sessions,
        read_sessions=read_sessions,
        verifier=build_verifier(settings),
        admin=admin,
        issuer=issuer,
        keys=keys,
        signer=signer,
        access_verifier=AccessTokenVerifier(keys, issuer=settings.broker_token_issuer),
        relay=relay,
        writer=writer,
        broker_ready=asyncio.Event(),
        alert_policy=alert_policy(settings),
        routing=RoutingConfig(settings.critical_diagnoses, alert_policy(settings)),
    )
    rt.kiosk_responder = kiosk_responder(settings, sessions, service_password, rt.broker_ready)
    writer.start()
    try:
        async with admin, issuer, relay, rt.kiosk_responder:
            tasks = [
                asyncio.create_task(_bootstrap_broker(rt, service_password), name="hub-bootstrap"),
                asyncio.create_task(_prune_loop(rt), name="hub-prune"),
                asyncio.create_task(
                    _board_loop(rt, Clinic(settings.clinic_timezone)), name="hub-board"
                ),
                asyncio.create_task(_alert_loop(rt), name="hub-alerts"),
            ]
            if settings.alert_router_enabled:
                tasks.append(asyncio.create_task(_alert_router_loop(rt), name="hub-alert-router"))
            try:
                yield rt
            finally:
                # Before the relay stops, so that it still publishes the last groups.
                await anyio.to_thread.run_sync(rt.writer.close)
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        # What was submitted is written (and answered) before the engine goes.
        await anyio.to_thread.run_sync(rt.writer.close)  # idempotent
        engine.dispose()
