"""Short-lived broker credentials: signed tokens, recorded per session.

Issuing or renewing a credential changes no broker state: the password is an ES256
token (hub.broker_tokens) that the broker's plugin verifies, scoped by its ``acl``
claim and closed by the broker at its ``exp``. The database keeps one row per client
id (audit, renewal, revocation). Revoking sends the broker one command over
``$CONTROL/hub-auth/v1``; the plugin closes the connection, refuses the client's
tokens until they would have expired, and keeps that list across restarts. Whenever
the admin connection starts, the live revocations are sent again (the broker may have
lost a change made while it was away).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

import anyio.to_thread
from sqlalchemy import Index, Integer, String, delete, select
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from hub import metrics
from hub.audit import ActorKind, record_audit
from hub.broker_admin import BrokerAdmin, Revocation
from hub.broker_tokens import AclRule, Kind, TokenSigner, session_acl
from hub.db import Base, UTCDateTime, utcnow
from hub.envelope import iso_utc
from hub.errors import BrokerUnavailableError, HubError
from hub.service import BackgroundService, wait_event

log = logging.getLogger("hub.credentials")
T = TypeVar("T")

# Who a credential is for, as the audit trail names them.
_ACTOR_KINDS: dict[str, ActorKind] = {"session": "user", "kiosk": "kiosk", "partner": "partner"}


class BrokerSession(Base):
    __tablename__ = "broker_sessions"
    __table_args__ = (
        Index("ix_broker_sessions_user", "tenant", "user_id"),
        Index("ix_broker_sessions_expires", "expires_at"),
    )

    client_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    username: Mapped[str] = mapped_column(String(160), unique=True, nullable=False)
    tenant: Mapped[str] = mapped_column(String(40), nullable=False)
    # The session's user, or the kiosk's or partner's id.
    user_id: Mapped[str] = mapped_column(String(64), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False, default="session")
    # The newest token's id (renewal replaces it).
    jti: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    # The newest token's exp: no token of this client id lives longer.
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The lifetime this credential was issued with; renewals extend it by as much.
    ttl_seconds: Mapped[int] = mapped_column(Integer, nullable=False)


@dataclass(frozen=True, slots=True)
class IssuedCredentials:
    client_id: str
    username: str
    password: str
    expires_at: datetime
    jti: str


class SessionNotFoundError(HubError):
    def __init__(self, client_id: str) -> None:
        super().__init__(f"no live broker session {client_id!r}")
        self.client_id = client_id


def username_for(kind: Kind, client_id: str) -> str:
    # ':' never occurs in tenant or user ids, nor in the hub's own account names.
    return f"{kind}:{client_id}"


class CredentialIssuer(BackgroundService):
    """Issues, renews and revokes broker tokens.

    As an async context manager it keeps the broker's revocation list in step: after
    every (re)connection of the admin client, and after a revocation the broker did
    not confirm, it sends the live revocations again.
    """

    _task_name = "hub-revocation-sync"

    def __init__(
        self,
        *,
        admin: BrokerAdmin,
        signer: TokenSigner,
        sessions: sessionmaker[Session],
        ttl: timedelta = timedelta(hours=1),
        max_sessions_per_user: int = 8,
        clock: Callable[[], datetime] = utcnow,
        generation: Callable[[], int] | None = None,
    ) -> None:
        super().__init__()
        self._admin = admin
        self._signer = signer
        self._sessions = sessions
        self._ttl = ttl
        self._max_per_user = max_sessions_per_user
        self._clock = clock
        self._generation = generation or (lambda: 0)
        self._resync = asyncio.Event()

    @property
    def resend_pending(self) -> bool:
        """Whether a revocation the broker did not confirm waits to be sent again
        (by this issuer's sync task, or by the next one to start)."""
        return self._resync.is_set()

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
        kind: Kind = "session",
        acl: Sequence[AclRule] | None = None,
        ttl: timedelta | None = None,
        client_id: str | None = None,
    ) -> IssuedCredentials:
        """New credentials for one session of ``user_id``.

        By default a browser session with the session acl and a new client id.
        Kiosks and partners pass their ``kind``, ``acl``, ``ttl`` and a stable
        ``client_id`` (their persistent session survives renewals).
        """
        now = self._clock()
        lifetime = ttl or self._ttl
        expires_at = min(now + lifetime, not_after)
        if expires_at <= now:
            raise ValueError("the token expires too soon to issue credentials")
        client_id = client_id or f"{tenant}.{user_id}.{secrets.token_hex(4)}"
        username = username_for(kind, client_id)
        token = self._signer.sign(
            kind=kind,
            tenant=tenant,
            sub=user_id,
            client_id=client_id,
            username=username,
            expires_at=expires_at,
            acl=acl if acl is not None else session_acl(tenant, user_id),
            now=now,
        )

        def record(session: Session) -> list[Revocation]:
            row = session.get(BrokerSession, client_id, with_for_update=True)
            if row is None:
                session.add(
                    BrokerSession(
                        client_id=client_id,
                        username=username,
                        tenant=tenant,
                        user_id=user_id,
                        kind=kind,
                        jti=token.jti,
                        created_at=now,
                        expires_at=token.expires_at,
                        ttl_seconds=int(lifetime.total_seconds()),
                    )
                )
            else:
                # A stable client id (a kiosk's, a partner's) issued again.
                if (row.tenant, row.user_id, row.kind) != (tenant, user_id, kind):
                    raise ValueError(f"client id {client_id!r} belongs to another identity")
                if row.revoked_at is not None and row.expires_at > now:
                    # The broker refuses this client id until its revocation runs out.
                    raise SessionNotFoundError(client_id)
                if row.revoked_at is not None or row.expires_at <= now:
                    row.revoked_at = None
                    row.created_at = now
                    row.expires_at = token.expires_at
                else:
                    row.expires_at = max(row.expires_at, token.expires_at)
                row.jti = token.jti
                row.ttl_seconds = int(lifetime.total_seconds())
            _audit(
                session,
                "session.issued",
                tenant,
                client_id,
                kind,
                token.expires_at,
                actor=(user_id, _ACTOR_KINDS[kind]),
            )
            if kind != "session":
                return []
            live = session.scalars(
                select(BrokerSession)
                .where(
                    BrokerSession.tenant == tenant,
                    BrokerSession.user_id == user_id,
                    BrokerSession.kind == "session",
                    BrokerSession.revoked_at.is_(None),
                    BrokerSession.expires_at > now,
                )
                .order_by(BrokerSession.created_at.desc(), BrokerSession.client_id)
            ).all()
            surplus = [s for s in live if s.client_id != client_id][self._max_per_user - 1 :]
            for s in surplus:
                s.revoked_at = now
                # Pushed out by this user's newest session (max_sessions_per_user).
                _audit(
                    session,
                    "session.revoked",
                    tenant,
                    s.client_id,
                    s.kind,
                    s.expires_at,
                    actor=(user_id, "user"),
                    reason="session_limit",
                )
            return [_revocation(s) for s in surplus]

        evicted = await self._db(record)
        metrics.count_credential("issued", kind)
        if evicted:
            metrics.count_credential("revoked", "session", len(evicted))
            await self._send(evicted)
        return IssuedCredentials(client_id, username, token.token, token.expires_at, token.jti)

    async def renew(
        self,
        *,
        tenant: str,
        user_id: str,
        client_id: str,
        not_after: datetime,
        kind: Kind = "session",
        acl: Sequence[AclRule] | None = None,
    ) -> IssuedCredentials:
        """A new token for a live session of the same user and client id: the client
        reconnects with it and keeps its persistent session and queued messages. The
        previous token stays valid until its own (earlier) expiry."""
        now = self._clock()

        def extend(session: Session) -> IssuedCredentials:
            row = session.scalar(
                select(BrokerSession)
                .where(
                    BrokerSession.client_id == client_id,
                    BrokerSession.tenant == tenant,
                    BrokerSession.user_id == user_id,
                    BrokerSession.kind == kind,
                    BrokerSession.revoked_at.is_(None),
                    BrokerSession.expires_at > now,
                )
                .with_for_update()
            )
            if row is None:
                raise SessionNotFoundError(client_id)
            expires_at = min(now + timedelta(seconds=row.ttl_seconds), not_after)
            if expires_at <= now:
                raise ValueError("the token expires too soon to issue credentials")
            token = self._signer.sign(
                kind=kind,
                tenant=tenant,
                sub=user_id,
                client_id=client_id,
                username=row.username,
                expires_at=expires_at,
                acl=acl if acl is not None else session_acl(tenant, user_id),
                now=now,
            )
            # Never shorten: an earlier token of this client id may outlive this one,
            # and a revocation must last as long as the longest.
            row.expires_at = max(row.expires_at, token.expires_at)
            row.jti = token.jti
            _audit(
                session,
                "session.renewed",
                tenant,
                client_id,
                kind,
                token.expires_at,
                actor=(user_id, _ACTOR_KINDS[kind]),
            )
            return IssuedCredentials(
                client_id, row.username, token.token, token.expires_at, token.jti
            )

        renewed = await self._db(extend)
        metrics.count_credential("renewed", kind)
        return renewed

    async def revoke(
        self,
        *,
        tenant: str,
        client_id: str,
        user_id: str | None = None,
        by: tuple[str, ActorKind] | None = None,
        kind: Kind | None = None,
    ) -> None:
        """Revoke a session now: the broker closes its connection and refuses its
        tokens. ``user_id`` limits the revocation to that user's own sessions, ``kind``
        to credentials of that kind (a user's id may equal a kiosk's or a partner's). The
        revocation is committed first; if the broker does not confirm it, it is sent
        again until it does. ``by`` names who revoked it in the audit trail (by
        default ``user_id``, else the hub)."""
        actor = by or ((user_id, "user") if user_id is not None else _HUB)
        now = self._clock()

        def mark(session: Session) -> tuple[str, Revocation]:
            query = select(BrokerSession).where(
                BrokerSession.client_id == client_id,
                BrokerSession.tenant == tenant,
                BrokerSession.revoked_at.is_(None),
                BrokerSession.expires_at > now,
            )
            if user_id is not None:
                query = query.where(BrokerSession.user_id == user_id)
            if kind is not None:
                query = query.where(BrokerSession.kind == kind)
            row = session.scalar(query.with_for_update())
            if row is None:
                raise SessionNotFoundError(client_id)
            row.revoked_at = now
            _audit(
                session, "session.revoked", tenant, client_id, row.kind, row.expires_at, actor=actor
            )
            return row.kind, _revocation(row)

        kind_revoked, revocation = await self._db(mark)
        metrics.count_credential("revoked", kind_revoked)
        await self._send([revocation])

    async def revoke_client_ids(
        self,
        tenant: str,
        client_ids: Sequence[str],
        *,
        by: tuple[str, ActorKind] | None = None,
    ) -> int:
        """Revoke every live credential of these client ids (a kiosk or partner that
        is disabled); returns how many were live. ``by`` names who revoked them in
        the audit trail (by default the hub)."""
        actor = by or _HUB
        now = self._clock()

        def mark(session: Session) -> list[tuple[str, Revocation]]:
            rows = session.scalars(
                select(BrokerSession).where(
                    BrokerSession.tenant == tenant,
                    BrokerSession.client_id.in_(list(client_ids)),
                    BrokerSession.revoked_at.is_(None),
                    BrokerSession.expires_at > now,
                )
            ).all()
            for row in rows:
                row.revoked_at = now
                _audit(
                    session,
                    "session.revoked",
                    tenant,
                    row.client_id,
                    row.kind,
                    row.expires_at,
                    actor=actor,
                )
            return [(r.kind, _revocation(r)) for r in rows]

        marked = await self._db(mark)
        for kind, _ in marked:
            metrics.count_credential("revoked", kind)
        revocations = [revocation for _, revocation in marked]
        if revocations:
            await self._send(revocations)
        return len(revocations)

    async def _send(self, revocations: Sequence[Revocation]) -> None:
        try:
            await self._admin.revoke_tokens(revocations)
        except (BrokerUnavailableError, HubError):
            # Recorded already; the sync task sends it when the broker answers again.
            log.warning("broker did not confirm %d revocation(s); will resend", len(revocations))
            self._resync.set()

    async def live_revocations(self) -> list[Revocation]:
        now = self._clock()

        def load(session: Session) -> list[Revocation]:
            rows = session.scalars(
                select(BrokerSession).where(
                    BrokerSession.revoked_at.is_not(None), BrokerSession.expires_at > now
                )
            ).all()
            return [_revocation(r) for r in rows]

        return await self._db(load)

    async def prune(self, older_than: timedelta) -> int:
        """Forget sessions that expired longer ago than ``older_than``."""
        cutoff = self._clock() - older_than

        def forget(session: Session) -> int:
            result = session.execute(delete(BrokerSession).where(BrokerSession.expires_at < cutoff))
            return int(result.rowcount or 0)  # type: ignore[attr-defined]

        return await self._db(forget)

    async def _run(self) -> None:
        synced: int | None = None
        while True:
            generation = self._generation()
            if generation and (generation != synced or self._resync.is_set()):
                self._resync.clear()
                try:
                    revocations = await self.live_revocations()
                    if revocations:
                        await self._admin.revoke_tokens(revocations)
                        log.info("sent %d live revocation(s) to the broker", len(revocations))
                    synced = generation
                except Exception:  # the broker or database is away: try again soon
                    log.warning("revocation sync failed; retrying", exc_info=True)
                    self._resync.set()
                    await asyncio.sleep(1.0)
                    continue
            await wait_event(self._resync, 0.5)


_HUB: tuple[str, ActorKind] = ("hub", "hub")


def _audit(
    session: Session,
    kind: str,
    tenant: str,
    client_id: str,
    credential_kind: str,
    expires_at: datetime,
    *,
    actor: tuple[str, ActorKind],
    reason: str | None = None,
) -> None:
    """One audit row for a credential, in the transaction that changes it."""
    details = {"credentialKind": credential_kind, "expiresAt": iso_utc(expires_at)}
    if reason is not None:
        details["reason"] = reason
    record_audit(
        session,
        tenant=tenant,
        actor=actor[0],
        actor_kind=actor[1],
        kind=kind,
        subject=client_id,
        details=details,
    )


def _revocation(row: BrokerSession) -> Revocation:
    return Revocation(row.client_id, int(row.expires_at.timestamp()) + 1)
