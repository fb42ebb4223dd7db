"""Notifications and critical alerts.

A notification is a row first (so it survives any browser being offline), then a
QoS 1 message on ``tenants/{t}/users/{userId}/notifications/{id}``, queued through the
outbox in the same transaction as the event that caused it. Every later change of
the notification (a re-send, its escalation, its acknowledgement) re-publishes it
with a higher ``version``, so a client keeps the newest state per id.

Critical alerts (a concerning biopsy result) are re-sent while unacknowledged and
then escalated to the tenant's admins; the escalation is itself an event
(``biopsy:escalated``). See docs/notifications.md.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from api.domain.common import staff_with_role
from api.errors import NotFound
from api.models import Biopsy, Notification, Patient, Staff
from hub.audit import record_audit
from hub.catalog import BiopsyEscalatedData
from hub.db import utcnow
from hub.envelope import iso_utc
from hub.ids import new_id
from hub.outbox import EmittedEvent, emit, enqueue_message
from hub.topics import notification_topic

log = logging.getLogger("api.notifications")

SYSTEM_ACTOR = "hub.escalation"


@dataclass(frozen=True, slots=True)
class AlertPolicy:
    """When an unacknowledged critical alert is re-sent and escalated."""

    resend_after: timedelta
    max_resends: int
    escalate_after: timedelta

    def first_action(self, created: datetime, escalate_at: datetime | None) -> datetime | None:
        return self.after_send(created, 1, escalate_at)

    def after_send(
        self, sent: datetime, attempt: int, escalate_at: datetime | None
    ) -> datetime | None:
        """The next time to act on an alert sent ``attempt`` times, last at ``sent``."""
        if attempt - 1 < self.max_resends:
            resend = sent + self.resend_after
            return min(resend, escalate_at) if escalate_at is not None else resend
        return escalate_at


def notification_json(n: Notification) -> dict[str, Any]:
    return {
        "id": n.id,
        "tenant": n.tenant,
        "userId": n.user_id,
        "kind": n.kind,
        "severity": n.severity,
        "title": n.title,
        "body": n.body,
        "eventId": n.event_id,
        "eventType": n.event_type,
        "patientId": n.patient_id,
        "entity": n.entity,
        "entityId": n.entity_id,
        "escalationOf": n.escalation_of,
        "attempt": n.attempt,
        "escalated": n.escalated,
        "acknowledgedAt": iso_utc(n.acknowledged_at) if n.acknowledged_at else None,
        "acknowledgedBy": n.acknowledged_by,
        "createdAt": iso_utc(n.created_at),
        "updatedAt": iso_utc(n.updated_at),
        "version": n.version,
    }


def _publish(session: Session, n: Notification, actor: str) -> None:
    enqueue_message(
        session,
        tenant=n.tenant,
        topic=notification_topic(n.tenant, n.user_id, n.id),
        body=notification_json(n),
        kind="notification",
        patient_id=n.patient_id,
        entity_id=n.id,
        actor=actor,
    )


def notify(
    session: Session,
    *,
    event: EmittedEvent,
    user_ids: list[str],
    kind: str,
    severity: str,
    title: str,
    body: str,
    entity: str,
    entity_id: str,
    actor: str,
    policy: AlertPolicy | None = None,
    escalate: bool = False,
    escalation_of: str | None = None,
) -> list[Notification]:
    """Store and queue one notification per user (each user once), in the caller's
    transaction. With a ``policy`` it is re-sent while unacknowledged, and with
    ``escalate`` also escalated after ``policy.escalate_after``."""
    now = utcnow()
    created = []
    for user_id in dict.fromkeys(user_ids):
        escalate_at = now + policy.escalate_after if policy and escalate else None
        n = Notification(
            tenant=event.tenant,
            id=new_id("n"),
            user_id=user_id,
            kind=kind,
            severity=severity,
            title=title[:200],
            body=body[:1000],
            event_id=event.id,
            event_type=event.type,
            patient_id=event.envelope["patientId"],
            entity=entity,
            entity_id=entity_id,
            escalation_of=escalation_of,
            attempt=1,
            escalated=False,
            next_action_at=policy.first_action(now, escalate_at) if policy else None,
            escalate_at=escalate_at,
            created_at=now,
            updated_at=now,
            version=1,
        )
        session.add(n)
        _publish(session, n, actor)
        created.append(n)
    return created


def _acknowledge(session: Session, n: Notification, by: str, now: datetime) -> None:
    n.acknowledged_at = now
    n.acknowledged_by = by
    n.next_action_at = None
    n.updated_at = now
    n.version += 1
    _publish(session, n, by)


def acknowledge(
    session: Session, *, tenant: str, user_id: str, notification_id: str
) -> Notification:
    """Acknowledge one of the caller's notifications (again is fine: nothing changes).
    Acknowledging an alert also settles the escalations it caused."""
    n = session.get(Notification, (tenant, notification_id), with_for_update=True)
    if n is None or n.user_id != user_id:
        raise NotFound(f"notification {notification_id} not found")
    if n.acknowledged_at is None:
        now = utcnow()
        _acknowledge(session, n, user_id, now)
        children = session.scalars(
            select(Notification)
            .where(
                Notification.tenant == tenant,
                Notification.escalation_of == n.id,
                Notification.acknowledged_at.is_(None),
            )
            .with_for_update()
        ).all()
        for child in children:
            _acknowledge(session, child, user_id, now)
        # Ids and the kind only: a title or body can name a patient or a diagnosis.
        record_audit(
            session,
            tenant=tenant,
            actor=user_id,
            actor_kind="user",
            kind="notification.acknowledged",
            subject=n.id,
            details={"kind": n.kind},
        )
        session.commit()
    return n


def acknowledge_entity(session: Session, *, tenant: str, entity_id: str, by: str) -> int:
    """Settle every open notification about one entity (reviewing a biopsy settles its
    alert and its escalations), in the caller's transaction."""
    rows = session.scalars(
        select(Notification)
        .where(
            Notification.tenant == tenant,
            Notification.entity_id == entity_id,
            Notification.acknowledged_at.is_(None),
        )
        .with_for_update()
    ).all()
    now = utcnow()
    for n in rows:
        _acknowledge(session, n, by, now)
    return len(rows)


def list_for_user(
    session: Session, *, tenant: str, user_id: str, unacknowledged_only: bool, limit: int
) -> list[Notification]:
    """Unacknowledged first (critical before alerts), then newest first."""
    query = select(Notification).where(
        Notification.tenant == tenant, Notification.user_id == user_id
    )
    if unacknowledged_only:
        query = query.where(Notification.acknowledged_at.is_(None))
    open_first = case((Notification.acknowledged_at.is_(None), 0), else_=1)
    critical_first = case((Notification.severity == "critical", 0), else_=1)
    return list(
        session.scalars(
            query.order_by(
                open_first, critical_first, Notification.created_at.desc(), Notification.id
            ).limit(limit)
        )
    )


# --- the escalation worker ---


def _due(now: datetime) -> Any:
    return (
        Notification.next_action_at.is_not(None),
        Notification.next_action_at <= now,
        Notification.acknowledged_at.is_(None),
    )


def any_due(session: Session) -> bool:
    """A cheap read first, so the worker takes a write transaction (SQLite: the
    database's one writer) only when there is something to do."""
    return session.scalar(select(Notification.id).where(*_due(utcnow())).limit(1)) is not None


def process_due(session: Session, policy: AlertPolicy, *, batch: int = 100) -> int:
    """Re-send or escalate the unacknowledged alerts whose time has come; return how
    many were handled. Safe to run in several processes: due rows are locked and
    skipped by the others (PostgreSQL), SQLite writes one transaction at a time."""
    now = utcnow()
    due = session.scalars(
        select(Notification)
        .where(*_due(now))
        # By tenant: escalations lock each tenant's seq row, and two workers that
        # took tenants in opposite orders could deadlock.
        .order_by(Notification.tenant, Notification.next_action_at)
        .limit(batch)
        .with_for_update(skip_locked=True)
    ).all()
    for n in due:
        if n.escalate_at is not None and not n.escalated and now >= n.escalate_at:
            _escalate(session, n, policy, now)
        else:
            n.attempt += 1
            n.next_action_at = policy.after_send(now, n.attempt, n.escalate_at)
            n.updated_at = now
            n.version += 1
            _publish(session, n, SYSTEM_ACTOR)
    session.commit()
    return len(due)


def _escalate(session: Session, n: Notification, policy: AlertPolicy, now: datetime) -> None:
    n.escalated = True
    n.next_action_at = None
    n.updated_at = now
    n.version += 1
    _publish(session, n, SYSTEM_ACTOR)
    biopsy = session.get(Biopsy, (n.tenant, n.entity_id))
    if n.entity != "biopsy" or biopsy is None:
        log.error("cannot escalate notification %s about %s %s", n.id, n.entity, n.entity_id)
        return
    # The admins; a tenant without one falls back to its other active providers, so an
    # unacknowledged critical result always reaches somebody.
    targets = [s.id for s in staff_with_role(session, n.tenant, "admin") if s.id != n.user_id]
    if not targets:
        targets = [
            s.id
            for s in session.scalars(
                select(Staff).where(
                    Staff.tenant == n.tenant, Staff.active.is_(True), Staff.is_provider.is_(True)
                )
            )
            if s.id != n.user_id
        ]
    event = emit(
        session,
        tenant=n.tenant,
        event_type="biopsy:escalated",
        actor=SYSTEM_ACTOR,
        patient_id=n.patient_id,
        entity_id=biopsy.id,
        data=BiopsyEscalatedData(
            id=biopsy.id,
            patient_id=n.patient_id,
            ordering_provider_id=biopsy.ordering_provider_id,
            notification_id=n.id,
            escalated_to=targets,
            unacknowledged_since=n.created_at,
            attempts=n.attempt,
        ),
    )
    if not targets:
        log.error("critical result %s escalated, but tenant %s has nobody to tell", n.id, n.tenant)
        return
    patient = session.get(Patient, (n.tenant, n.patient_id))
    provider = session.get(Staff, (n.tenant, n.user_id))
    who = provider.name if provider else n.user_id
    name = patient.full_name if patient else n.patient_id
    notify(
        session,
        event=event,
        user_ids=targets,
        kind="escalation",
        severity="critical",
        title="Escalated: unacknowledged critical biopsy result",
        body=f"{name}: {biopsy.site}: {biopsy.diagnosis}. Not acknowledged by {who} "
        f"since {iso_utc(n.created_at)}.",
        entity="biopsy",
        entity_id=biopsy.id,
        actor=SYSTEM_ACTOR,
        policy=policy,
        escalation_of=n.id,
    )


# Counting stops here: past it, the gauge only says "at least this many".
COUNT_CAP = 100_000


def pending_counts(session: Session) -> tuple[int, int]:
    """Unacknowledged notifications, and among them escalated alerts, each counted up
    to ``COUNT_CAP`` (for GET /metrics: a bounded query whatever the table's size)."""
    unacknowledged = Notification.acknowledged_at.is_(None)

    def capped(*where: Any) -> int:
        rows = select(Notification.id).where(*where).limit(COUNT_CAP).subquery()
        return int(session.scalar(select(func.count()).select_from(rows)) or 0)

    return capped(unacknowledged), capped(unacknowledged, Notification.escalated.is_(True))
