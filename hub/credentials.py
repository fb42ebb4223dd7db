"""Short-lived broker credentials for browser sessions.

Each credential is one dynsec client, bound to its client id, holding the tenant's
role (its patients and meta topics) and the user's role (its own notifications).
The broker alone enforces what a session may read; the receive default is deny.

Every live dynsec client makes each later change cost more (the broker rewrites its
whole JSON file per change), so their number is bounded: credentials expire (at most
at the token's ``exp``), a user holds a bounded number at once (the oldest goes), and
a reaper deletes expired ones, which also disconnects their live sessions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

import anyio.to_thread
from sqlalchemy import Index, Integer, String, delete, func, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from hub.broker_admin import Acl, BrokerAdmin, Role
from hub.db import Base, UTCDateTime, utcnow
from hub.errors import DynsecError, HubError
from hub.service import BackgroundService, wait_event
from hub.topics import meta_filter, patients_filter, user_filter, validate_tenant

log = logging.getLogger("hub.credentials")
T = TypeVar("T")

SESSION_PREFIX = "s."  # every dynsec username the issuer creates starts with this


class BrokerSession(Base):
    __tablename__ = "broker_sessions"
    __table_args__ = (
        Index("ix_broker_sessions_user", "tenant", "user_id"),
        Index("ix_broker_sessions_expires", "expires_at"),
    )

    client_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    username: Mapped[str] = mapped_column(String(160), unique=True, nullable=False)
    tenant: Mapped[str] = mapped_column(String(40), nullable=False)
    user_id: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set once the dynsec client is gone; rows are kept for audit.
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The lifetime this credential was issued with; renewals extend it by as much.
    ttl_seconds: Mapped[int] = mapped_column(Integer, nullable=False)


def tenant_role(tenant: str) -> Role:
    """Read a tenant's patient events, snapshots and meta topics."""
    name = f"tenant.{validate_tenant(tenant)}"
    acls: list[Acl] = []
    for topic in (patients_filter(tenant), meta_filter(tenant)):
        acls += [Acl("subscribePattern", topic), Acl("publishClientReceive", topic)]
    return Role(name, tuple(acls))


def user_role(tenant: str, user_id: str) -> Role:
    """Read one user's own subtree (notifications). dynsec 2.0 has no %u substitution,
    so each user needs a role of their own."""
    topic = user_filter(tenant, user_id)
    name = f"user.{tenant}.{user_id}"
    return Role(name, (Acl("subscribePattern", topic), Acl("publishClientReceive", topic)))


SERVICE_ROLE = Role(
    "hub.service",
    (Acl("publishClientSend", "tenants/#"),),
)


@dataclass(frozen=True, slots=True)
class IssuedCredentials:
    client_id: str
    username: str
    password: str
    expires_at: datetime


class CapacityError(HubError):
    """The broker holds as many live session clients as it is allowed to."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"{limit} live broker sessions: no capacity for another")
        self.limit = limit


class SessionNotFoundError(HubError):
    def __init__(self, client_id: str) -> None:
        super().__init__(f"no live broker session {client_id!r}")
        self.client_id = client_id


class CredentialIssuer(BackgroundService):
    """Issues, renews, revokes and reaps per-session broker credentials.

    As an async context manager it runs the reaper: expired or revoked sessions are
    deleted from the broker (which disconnects them) without anyone asking.
    """

    _task_name = "hub-credential-reaper"

    def __init__(
        self,
        *,
        admin: BrokerAdmin,
        sessions: sessionmaker[Session],
        ttl: timedelta = timedelta(hours=1),
        max_sessions_per_user: int = 8,
        max_live_sessions: int | None = None,
        reap_interval: float = 30.0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        super().__init__()
        self._admin = admin
        self._sessions = sessions
        self._ttl = ttl
        self._max_per_user = max_sessions_per_user
        self._max_live = max_live_sessions
        self._reap_interval = reap_interval
        self._clock = clock
        self._wake = asyncio.Event()

    async def _db(self, fn: Callable[[Session], T]) -> T:
        def run() -> T:
            with self._sessions.begin() as session:
                return fn(session)

        return await anyio.to_thread.run_sync(run)

    async def issue(
        self,
        *,
        tenant: str,
        user_id: str,
        not_after: datetime,
        roles: Sequence[Role] | None = None,
        ttl: timedelta | None = None,
    ) -> IssuedCredentials:
        """New credentials for one session of ``user_id``.

        By default a browser session: the tenant's read role and the user's own role.
        Devices and partners (kiosks, labs) pass their own ``roles`` (their topic
        filters) and a longer ``ttl``; everything else (binding to the client id,
        bounding, reaping, revocation) is the same.
        """
        now = self._clock()
        lifetime = ttl or self._ttl
        expires_at = min(now + lifetime, not_after)
        if expires_at <= now:
            raise ValueError("the token expires too soon to issue credentials")
        client_id = f"{tenant}.{user_id}.{secrets.token_hex(4)}"
        username = f"{SESSION_PREFIX}{client_id}"
        password = secrets.token_urlsafe(24)

        def record(session: Session) -> list[str]:
            session.add(
                BrokerSession(
                    client_id=client_id,
                    username=username,
                    tenant=tenant,
                    user_id=user_id,
                    created_at=now,
                    expires_at=expires_at,
                    ttl_seconds=int(lifetime.total_seconds()),
                )
            )
            if self._max_live is not None and self._live_count(session, now) > self._max_live:
                raise CapacityError(self._max_live)
            live = session.scalars(
                select(BrokerSession)
                .where(
                    BrokerSession.tenant == tenant,
                    BrokerSession.user_id == user_id,
                    BrokerSession.revoked_at.is_(None),
                    BrokerSession.removed_at.is_(None),
                    BrokerSession.expires_at > now,
                )
                .order_by(BrokerSession.created_at.desc(), BrokerSession.client_id)
            ).all()
            surplus = [s for s in live if s.client_id != client_id][self._max_per_user - 1 :]
            for s in surplus:
                s.revoked_at = now
            return [s.username for s in surplus]

        # The row is committed first: whatever fails later, the reaper will find it.
        evicted = await self._db(record)
        grants = (
            list(roles)
            if roles is not None
            else [
                tenant_role(tenant),
                user_role(tenant, user_id),
            ]
        )
        try:
            await self._create_client(username, password, client_id, grants)
        except Exception:
            await self._db(lambda s: self._mark(s, client_id, revoked=True))
            raise
        for name in evicted:
            await self._remove(name)
        self._wake.set()
        return IssuedCredentials(client_id, username, password, expires_at)

    async def _create_client(
        self, username: str, password: str, client_id: str, grants: Sequence[Role]
    ) -> None:
        try:
            for role in grants:
                await self._admin.ensure_role(role)
            await self._admin.create_client(
                username=username,
                password=password,
                client_id=client_id,
                roles=[r.name for r in grants],
            )
        except DynsecError as exc:
            if exc.command != "addClientRole":
                raise
            # A user role this process believed in was deleted meanwhile (the user's
            # last session was reaped, perhaps by another api process): make it again.
            for role in grants:
                await self._admin.ensure_role(role, refresh=True)
            await self._admin.create_client(
                username=username,
                password=password,
                client_id=client_id,
                roles=[r.name for r in grants],
            )

    @staticmethod
    def _live_count(session: Session, now: datetime) -> int:
        return int(
            session.scalar(
                select(func.count()).where(
                    BrokerSession.removed_at.is_(None),
                    BrokerSession.revoked_at.is_(None),
                    BrokerSession.expires_at > now,
                )
            )
            or 0
        )

    async def renew(
        self, *, tenant: str, user_id: str, client_id: str, not_after: datetime
    ) -> IssuedCredentials:
        """A new password and expiry for a live session of the same user, keeping its
        client id so the broker keeps its persistent session and queued messages.
        The broker disconnects the session on the password change; it reconnects."""
        now = self._clock()

        def extend(session: Session) -> tuple[str, datetime]:
            row = session.scalar(
                select(BrokerSession)
                .where(
                    BrokerSession.client_id == client_id,
                    BrokerSession.tenant == tenant,
                    BrokerSession.user_id == user_id,
                    BrokerSession.revoked_at.is_(None),
                    BrokerSession.removed_at.is_(None),
                    BrokerSession.expires_at > now,
                )
                .with_for_update()
            )
            if row is None:
                raise SessionNotFoundError(client_id)
            expires_at = min(now + timedelta(seconds=row.ttl_seconds), not_after)
            if expires_at <= now:
                raise ValueError("the token expires too soon to issue credentials")
            row.expires_at = expires_at
            return row.username, expires_at

        username, expires_at = await self._db(extend)
        password = secrets.token_urlsafe(24)
        await self._admin.set_client_password(username, password)
        self._wake.set()
        return IssuedCredentials(client_id, username, password, expires_at)

    async def revoke(self, *, tenant: str, client_id: str, user_id: str | None = None) -> None:
        """Revoke a session now; the broker disconnects it. ``user_id`` limits the
        revocation to that user's own sessions."""

        def mark(session: Session) -> str:
            query = select(BrokerSession).where(
                BrokerSession.client_id == client_id,
                BrokerSession.tenant == tenant,
                BrokerSession.removed_at.is_(None),
            )
            if user_id is not None:
                query = query.where(BrokerSession.user_id == user_id)
            row = session.scalar(query)
            if row is None:
                raise SessionNotFoundError(client_id)
            row.revoked_at = row.revoked_at or self._clock()
            return row.username

        username = await self._db(mark)
        await self._remove(username)

    def _mark(self, session: Session, client_id: str, *, revoked: bool) -> None:
        values = {"revoked_at": self._clock()} if revoked else {"removed_at": self._clock()}
        session.execute(
            update(BrokerSession).where(BrokerSession.client_id == client_id).values(**values)
        )

    async def _remove(self, username: str) -> None:
        """Delete the broker client (which disconnects it); when it was its user's last,
        delete the user's role too, so the dynsec file stays bounded by live users."""
        await self._admin.delete_client(username)

        def done(session: Session) -> tuple[str, str] | None:
            row = session.scalar(select(BrokerSession).where(BrokerSession.username == username))
            if row is None:
                return None
            if row.removed_at is None:
                row.removed_at = self._clock()
            others = session.scalar(
                select(func.count()).where(
                    BrokerSession.tenant == row.tenant,
                    BrokerSession.user_id == row.user_id,
                    BrokerSession.removed_at.is_(None),
                )
            )
            return (row.tenant, row.user_id) if not others else None

        last = await self._db(done)
        if last is not None:
            role = user_role(*last)
            await self._admin.delete_role(role.name)
            await self._restore_user_role(role, *last)

    async def _restore_user_role(self, role: Role, tenant: str, user_id: str) -> None:
        """Another api process may have issued a session to this user after the check
        above and before the role was deleted, which took the role from that session
        too. Sessions recorded since then are found here and given the role back;
        one recorded later meets the missing role itself and makes it again."""

        def live(session: Session) -> list[str]:
            return list(
                session.scalars(
                    select(BrokerSession.username).where(
                        BrokerSession.tenant == tenant,
                        BrokerSession.user_id == user_id,
                        BrokerSession.removed_at.is_(None),
                        BrokerSession.revoked_at.is_(None),
                    )
                ).all()
            )

        names = await self._db(live)
        if not names:
            return
        log.info("restoring role %s for %d new session(s)", role.name, len(names))
        await self._admin.ensure_role(role, refresh=True)
        for name in names:
            # Not made yet (its own addClientRole will find the role), or it already
            # holds the role again ("Internal error" in 2.0.11): nothing to do.
            with contextlib.suppress(DynsecError):
                await self._admin.add_client_role(name, role.name)

    async def reap(self) -> int:
        """Delete every expired or revoked session from the broker; return how many."""
        now = self._clock()

        def due(session: Session) -> list[str]:
            return list(
                session.scalars(
                    select(BrokerSession.username).where(
                        BrokerSession.removed_at.is_(None),
                        (BrokerSession.expires_at <= now) | BrokerSession.revoked_at.is_not(None),
                    )
                ).all()
            )

        names = await self._db(due)
        for name in names:
            await self._remove(name)
        return len(names)

    async def prune(self, older_than: timedelta) -> int:
        """Forget sessions removed from the broker longer ago than ``older_than``."""
        cutoff = self._clock() - older_than

        def forget(session: Session) -> int:
            result = session.execute(
                delete(BrokerSession).where(
                    BrokerSession.removed_at.is_not(None), BrokerSession.removed_at < cutoff
                )
            )
            return int(result.rowcount or 0)  # type: ignore[attr-defined]

        return await self._db(forget)

    async def reconcile(self) -> int:
        """Delete broker clients this issuer made that the database no longer knows
        as live (left behind by a crash between the broker and the database)."""
        now = self._clock()
        on_broker = [n for n in await self._admin.list_clients() if n.startswith(SESSION_PREFIX)]
        if not on_broker:
            return 0

        def live(session: Session) -> set[str]:
            return set(
                session.scalars(
                    select(BrokerSession.username).where(
                        BrokerSession.removed_at.is_(None),
                        BrokerSession.revoked_at.is_(None),
                        BrokerSession.expires_at > now,
                    )
                ).all()
            )

        keep = await self._db(live)
        stale = [n for n in on_broker if n not in keep]
        for name in stale:
            await self._remove(name)
        return len(stale)

    async def _next_expiry(self) -> datetime | None:
        def first(session: Session) -> datetime | None:
            return session.scalar(
                select(BrokerSession.expires_at)
                .where(BrokerSession.removed_at.is_(None))
                .order_by(BrokerSession.expires_at)
                .limit(1)
            )

        return await self._db(first)

    async def _run(self) -> None:
        reconciled = False
        while True:
            try:
                if not reconciled:
                    await self.reconcile()
                    reconciled = True
                await self.reap()
                nxt = await self._next_expiry()
            except Exception:  # the broker or database is away: try again soon
                log.warning("credential reaper failed; retrying", exc_info=True)
                await asyncio.sleep(min(self._reap_interval, 2.0))
                continue
            delay = self._reap_interval
            if nxt is not None:
                delay = max(0.05, min(delay, (nxt - self._clock()).total_seconds() + 0.05))
            self._wake.clear()
            await wait_event(self._wake, delay)
