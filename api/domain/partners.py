"""Integration partners: registration with a grant of event types, secrets (hashed,
rotated with a day of overlap), removal (docs/architecture.md, "Partners").

A partner's broker credentials and access tokens are issued by the route
(api/routers/partners.py); here is what the database keeps and checks. Every change
commits with its audit row.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.errors import Conflict, Invalid, NotFound
from api.models import Partner
from hub.audit import record_audit
from hub.db import utcnow
from hub.envelope import iso_utc
from hub.grants import normalize_grant

# A rotated-out secret keeps working this long, so a partner can roll it out.
PREVIOUS_SECRET_TTL = timedelta(hours=24)
SECRET_PREFIX = "hps_"
_MAX_SECRET_LENGTH = 100


def digest(secret: str) -> str:
    # 32 random bytes: a SHA-256 digest is as good as a slow hash (nothing to guess).
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def client_id_for(tenant: str, partner_id: str) -> str:
    """One broker client id per partner, the same across renewals: its persistent
    session survives them."""
    return f"{tenant}.partner.{partner_id}"


def partner_json(p: Partner) -> dict[str, Any]:
    now = utcnow()
    previous_live = p.previous_secret_expires_at is not None and p.previous_secret_expires_at > now
    return {
        "id": p.id,
        "name": p.name,
        "eventTypes": list(p.event_types),
        "createdAt": iso_utc(p.created_at),
        "secretCreatedAt": iso_utc(p.secret_created_at),
        "previousSecretExpiresAt": (
            iso_utc(p.previous_secret_expires_at)
            if previous_live and p.previous_secret_expires_at
            else None
        ),
        "lastSeenAt": iso_utc(p.last_seen_at) if p.last_seen_at else None,
    }


def register(
    session: Session, *, tenant: str, actor: str, partner_id: str, name: str, event_types: list[str]
) -> tuple[Partner, str]:
    """A new partner and its first secret (returned once, kept as a digest)."""
    try:
        grant = normalize_grant(event_types)
    except ValueError as exc:
        raise Invalid(str(exc), details=[{"field": "eventTypes", "message": str(exc)}]) from None
    existing = session.get(Partner, (tenant, partner_id))
    if existing is not None:
        if existing.removed_at is not None:
            raise Conflict(f"partner id {partner_id} belonged to a removed partner; choose another")
        raise Conflict(f"partner {partner_id} already exists")
    secret = new_secret()
    now = utcnow()
    partner = Partner(
        tenant=tenant,
        id=partner_id,
        name=name,
        event_types=grant,
        created_by=actor,
        created_at=now,
        secret_hash=digest(secret),
        secret_created_at=now,
    )
    session.add(partner)
    record_audit(
        session,
        tenant=tenant,
        actor=actor,
        actor_kind="user",
        kind="partner.registered",
        subject=partner_id,
        details={"eventTypes": grant},
    )
    try:
        session.commit()
    except IntegrityError:
        # A concurrent registration of the same id committed first.
        session.rollback()
        raise Conflict(f"partner {partner_id} already exists") from None
    return partner, secret


def list_partners(session: Session, tenant: str) -> list[Partner]:
    return list(
        session.scalars(
            select(Partner)
            .where(Partner.tenant == tenant, Partner.removed_at.is_(None))
            .order_by(Partner.id)
        )
    )


def _live(session: Session, tenant: str, partner_id: str) -> Partner:
    partner = session.get(
        Partner, (tenant, partner_id), with_for_update=True, populate_existing=True
    )
    if partner is None or partner.removed_at is not None:
        raise NotFound(f"partner {partner_id} not found")
    return partner


def rotate_secret(
    session: Session, *, tenant: str, actor: str, partner_id: str
) -> tuple[Partner, str]:
    """A new secret; the current one keeps working for ``PREVIOUS_SECRET_TTL``. A secret
    rotated out earlier stops at once: at most two work at any time."""
    partner = _live(session, tenant, partner_id)
    secret = new_secret()
    now = utcnow()
    partner.previous_secret_hash = partner.secret_hash
    partner.previous_secret_expires_at = now + PREVIOUS_SECRET_TTL
    partner.secret_hash = digest(secret)
    partner.secret_created_at = now
    record_audit(
        session,
        tenant=tenant,
        actor=actor,
        actor_kind="user",
        kind="partner.secret_rotated",
        subject=partner_id,
        details={"previousSecretExpiresAt": iso_utc(partner.previous_secret_expires_at)},
    )
    session.commit()
    return partner, secret


def remove(session: Session, *, tenant: str, actor: str, partner_id: str) -> None:
    """Refuse the partner's secrets and access tokens from now on; the caller revokes
    its broker credentials. Removing a removed partner changes nothing here, so that
    a caller whose revocation failed after the removal committed can try again."""
    partner = session.get(
        Partner, (tenant, partner_id), with_for_update=True, populate_existing=True
    )
    if partner is None:
        raise NotFound(f"partner {partner_id} not found")
    if partner.removed_at is not None:
        session.commit()
        return
    partner.removed_at = utcnow()
    partner.secret_hash = None
    partner.previous_secret_hash = None
    partner.previous_secret_expires_at = None
    record_audit(
        session,
        tenant=tenant,
        actor=actor,
        actor_kind="user",
        kind="partner.removed",
        subject=partner_id,
    )
    session.commit()


def authenticate(session: Session, secret: str) -> Partner | None:
    """The live partner whose current (or still valid previous) secret this is; None
    otherwise. Changes nothing: the caller records ``lastSeenAt`` (``seen``) once the
    request is let through."""
    if not secret.startswith(SECRET_PREFIX) or len(secret) > _MAX_SECRET_LENGTH:
        return None
    wanted = digest(secret)
    now = utcnow()
    partner = session.scalar(
        select(Partner).where(
            Partner.removed_at.is_(None),
            or_(
                Partner.secret_hash == wanted,
                and_(
                    Partner.previous_secret_hash == wanted,
                    Partner.previous_secret_expires_at > now,
                ),
            ),
        )
    )
    if partner is None:
        return None
    # The lookup is by digest; compare again in constant time all the same.
    current = hmac.compare_digest(partner.secret_hash or "", wanted)
    previous = hmac.compare_digest(partner.previous_secret_hash or "", wanted)
    if not (current or previous):
        return None
    session.commit()  # end the read; the partner's attributes stay loaded
    return partner


def seen(session: Session, tenant: str, partner_id: str) -> None:
    """``lastSeenAt`` is now."""
    session.execute(
        update(Partner)
        .where(Partner.tenant == tenant, Partner.id == partner_id)
        .values(last_seen_at=utcnow())
    )
    session.commit()


def granted(session: Session, tenant: str, partner_id: str) -> list[str] | None:
    """The grant of a live partner, read now (a removal or change counts at once);
    None when it was removed or never existed."""
    row = session.execute(
        select(Partner.event_types, Partner.removed_at).where(
            Partner.tenant == tenant, Partner.id == partner_id
        )
    ).first()
    if row is None or row.removed_at is not None:
        return None
    return list(row.event_types)
