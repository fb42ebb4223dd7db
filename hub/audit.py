"""The audit trail: who was given access to what (contract, section 12).

One row per grant, credential, revocation, kiosk attempt, replay or acknowledgement,
added in the same transaction as the change it records, so a change and its audit row
commit together or not at all. Rows are only inserted, never updated, and outlive the
events (``prune_audit``). A row names ids, kinds, counts and outcomes; never what a
patient typed, a name, a diagnosis, a secret or a token.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import BigInteger, Index, Integer, String, Text, delete, or_, select
from sqlalchemy.orm import Mapped, Session, mapped_column
from sqlalchemy.sql.elements import ColumnElement

from hub.db import Base, UTCDateTime, utcnow
from hub.envelope import iso_utc

ActorKind = Literal["user", "kiosk", "partner", "hub"]
# Details are small: ids, counts, outcomes. A bound keeps a bug from filling the table.
MAX_DETAILS_BYTES = 2048

_BigId = BigInteger().with_variant(Integer(), "sqlite")


class AuditRecord(Base):
    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_tenant_id", "tenant", "id"),
        Index("ix_audit_at", "at"),
    )

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(40), nullable=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    # Who acted: a user's sub, a kiosk's or a partner's id, or "hub" for the hub itself.
    actor: Mapped[str] = mapped_column(String(64), nullable=False)
    actor_kind: Mapped[str] = mapped_column(String(16), nullable=False)
    # What happened, as "subject.verb": "session.issued", "partner.removed", ...
    kind: Mapped[str] = mapped_column(String(40), nullable=False)
    # What it happened to: a client id, a kiosk, a partner, a notification.
    subject: Mapped[str | None] = mapped_column(String(160))
    details: Mapped[str | None] = mapped_column(Text)


def record_audit(
    session: Session,
    *,
    tenant: str,
    actor: str,
    actor_kind: ActorKind,
    kind: str,
    subject: str | None = None,
    details: Mapping[str, Any] | None = None,
    at: datetime | None = None,
) -> None:
    """Add one audit row to ``session``'s transaction; the caller commits it with the
    change it records."""
    text = json.dumps(dict(details), separators=(",", ":"), sort_keys=True) if details else None
    if text is not None and len(text.encode()) > MAX_DETAILS_BYTES:
        raise ValueError(f"audit details over {MAX_DETAILS_BYTES} bytes")
    session.add(
        AuditRecord(
            tenant=tenant,
            at=at or utcnow(),
            actor=actor,
            actor_kind=actor_kind,
            kind=kind,
            subject=subject,
            details=text,
        )
    )


@dataclass(frozen=True, slots=True)
class AuditPage:
    entries: list[dict[str, Any]]
    # The highest id in the page, or ``after`` when the page is empty: the next ``after``.
    next_after: int


def audit_json(row: AuditRecord) -> dict[str, Any]:
    return {
        "id": row.id,
        "at": iso_utc(row.at),
        "actor": row.actor,
        "actorKind": row.actor_kind,
        "kind": row.kind,
        "subject": row.subject,
        "details": json.loads(row.details) if row.details else {},
    }


def list_audit(
    session: Session,
    tenant: str,
    *,
    after: int = 0,
    limit: int = 100,
    actor: str | None = None,
    kinds: Sequence[str] = (),
) -> AuditPage:
    """The tenant's audit rows with ``id > after``, oldest first. ``kinds`` match a
    whole kind ("partner.removed") or every kind of a subject ("partner")."""
    query = select(AuditRecord).where(AuditRecord.tenant == tenant, AuditRecord.id > after)
    if actor is not None:
        query = query.where(AuditRecord.actor == actor)
    if kinds:
        exact = [k for k in kinds if "." in k]
        prefixes = [k for k in kinds if "." not in k]
        conditions: list[ColumnElement[bool]] = [AuditRecord.kind.in_(exact)] if exact else []
        conditions += [AuditRecord.kind.startswith(p + ".", autoescape=True) for p in prefixes]
        query = query.where(or_(*conditions))
    rows = list(session.scalars(query.order_by(AuditRecord.id).limit(limit)))
    return AuditPage(
        entries=[audit_json(r) for r in rows], next_after=rows[-1].id if rows else after
    )


def prune_audit(session: Session, older_than: timedelta) -> int:
    """Delete audit rows older than ``older_than`` (years, by default); the caller commits."""
    result = session.execute(delete(AuditRecord).where(AuditRecord.at < utcnow() - older_than))
    return int(getattr(result, "rowcount", 0) or 0)
