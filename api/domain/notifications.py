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
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from api.domain.alert_rules import AlertPolicy as AlertPolicy
from api.domain.alert_rules import resolve, rule_for
from api.errors import NotFound
from api.models import Biopsy, Notification, Patient, Staff
from hub.audit import record_audit
from hub.catalog import BiopsyEscalatedData
from hub.db import utcnow
from hub.envelope import iso_utc
from hub.ids import new_id
from hub.outbox import EmittedEvent, OutboxEvent, emit, enqueue_message
from hub.topics import notification_topic

log = logging.getLogger("api.notifications")

SYSTEM_ACTOR = "hub.escalation"


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
    ``escalate`` the first user's is also escalated after ``policy.escalate_after``
    (once per event: the others are its siblings, settled with it)."""
    now = utcnow()
    created = []
    for index, user_id in enumerate(dict.fromkeys(user_ids)):
        escalates = policy is not None and escalate and index == 0
        escalate_at = now + policy.escalate_after if policy and escalates else None
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
            resend_seconds=policy.resend_after.total_seconds() if policy else None,
            max_resends=policy.max_resends if policy else None,
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
    n = session.get(Notification, (tenant, notification_id))
    if n is None or n.user_id != user_id:
        raise NotFound(f"notification {notification_id} not found")
    if n.severity == "critical" and n.escalation_of is None and n.event_id is not None:
        # Lock every copy of the alert at once, in id order, the caller's among them:
        # two recipients acknowledging together then queue instead of deadlocking.
        session.scalars(
            select(Notification)
            .where(
                Notification.tenant == tenant,
                Notification.event_id == n.event_id,
                Notification.kind == n.kind,
                Notification.escalation_of.is_(None),
            )
            .order_by(Notification.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).all()
    else:
        session.get(
            Notification, (tenant, notification_id), with_for_update=True, populate_existing=True
        )
    if n.acknowledged_at is None:
        now = utcnow()
        _acknowledge(session, n, user_id, now)
        settled = [n.id]
        if n.severity == "critical" and n.escalation_of is None:
            # A critical alert routed to several people (the ordering provider, the
            # covering provider, a care team) is one alert: one of them has it.
            siblings = session.scalars(
                select(Notification)
                .where(
                    Notification.tenant == tenant,
                    Notification.event_id == n.event_id,
                    Notification.kind == n.kind,
                    Notification.escalation_of.is_(None),
                    Notification.acknowledged_at.is_(None),
                )
                .order_by(Notification.id)
                .with_for_update()
            ).all()
            for sibling in siblings:
                _acknowledge(session, sibling, user_id, now)
                settled.append(sibling.id)
        children = session.scalars(
            select(Notification)
            .where(
                Notification.tenant == tenant,
                Notification.escalation_of.in_(settled),
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


def mark_seen(
    session: Session,
    *,
    tenant: str,
    user_id: str,
    notification_id: str,
    received_at: datetime | None,
    displayed_at: datetime,
) -> Notification:
    """The user's client received and displayed the notification: recorded once
    (``notification.delivered`` and ``notification.displayed`` audit rows, actor the
    user); reporting it again changes nothing and records nothing."""
    n = session.get(Notification, (tenant, notification_id), with_for_update=True)
    if n is None or n.user_id != user_id:
        raise NotFound(f"notification {notification_id} not found")
    if n.displayed_at is None:
        now = utcnow()
        # A client's clock is only a claim: never before the alert, never in the future.
        displayed = min(max(displayed_at, n.created_at), now)
        received = min(max(received_at or displayed, n.created_at), displayed)
        if n.delivered_at is None:
            n.delivered_at = received
            record_audit(
                session,
                tenant=tenant,
                actor=user_id,
                actor_kind="user",
                kind="notification.delivered",
                subject=n.id,
                details={"kind": n.kind, "version": n.version, "receivedAt": iso_utc(received)},
            )
        n.displayed_at = displayed
        record_audit(
            session,
            tenant=tenant,
            actor=user_id,
            actor_kind="user",
            kind="notification.displayed",
            subject=n.id,
            details={"kind": n.kind, "version": n.version, "displayedAt": iso_utc(displayed)},
        )
        session.commit()
    return n


def receipt_json(n: Notification) -> dict[str, Any]:
    return {
        "id": n.id,
        "deliveredAt": iso_utc(n.delivered_at) if n.delivered_at else None,
        "displayedAt": iso_utc(n.displayed_at) if n.displayed_at else None,
        "acknowledgedAt": iso_utc(n.acknowledged_at) if n.acknowledged_at else None,
        "acknowledgedBy": n.acknowledged_by,
    }


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
        own = _own_policy(n, policy)
        if n.escalate_at is not None and not n.escalated and now >= n.escalate_at:
            _escalate(session, n, own, policy, now)
        else:
            n.attempt += 1
            n.next_action_at = own.after_send(now, n.attempt, n.escalate_at)
            n.updated_at = now
            n.version += 1
            _publish(session, n, SYSTEM_ACTOR)
    session.commit()
    return len(due)


def _own_policy(n: Notification, defaults: AlertPolicy) -> AlertPolicy:
    """The schedule the alert was routed with (its rule's), else the defaults."""
    if n.resend_seconds is None or n.max_resends is None:
        return defaults
    return AlertPolicy(
        resend_after=timedelta(seconds=n.resend_seconds),
        max_resends=n.max_resends,
        escalate_after=defaults.escalate_after,  # escalate_at is already on the row
    )


def escalation_targets(
    session: Session, n: Notification, defaults: AlertPolicy, notified: set[str]
) -> list[str]:
    """Whom the tenant's rule escalates ``n`` to, but those it already reached; with
    nobody left, the tenant's other active providers, so an unacknowledged critical
    alert always reaches somebody."""
    rule = rule_for(session, n.tenant, n.event_type, defaults)
    targets = [
        t
        for t in resolve(session, n.tenant, rule.escalate_to_staff, rule.escalate_to_roles)
        if t not in notified
    ]
    if not targets:
        targets = [
            s.id
            for s in session.scalars(
                select(Staff)
                .where(
                    Staff.tenant == n.tenant, Staff.active.is_(True), Staff.is_provider.is_(True)
                )
                .order_by(Staff.id)
            )
            if s.id not in notified
        ]
    return targets


def _event_data(session: Session, event_id: str) -> dict[str, Any]:
    row = session.scalar(select(OutboxEvent).where(OutboxEvent.id == event_id))
    data: dict[str, Any] = row.envelope().get("data", {}) if row is not None else {}
    return data


def _escalate(
    session: Session, n: Notification, own: AlertPolicy, defaults: AlertPolicy, now: datetime
) -> None:
    n.escalated = True
    n.next_action_at = None
    n.updated_at = now
    n.version += 1
    _publish(session, n, SYSTEM_ACTOR)
    # Everybody the alert reached (its siblings) already knows.
    notified = set(
        session.scalars(
            select(Notification.user_id).where(
                Notification.tenant == n.tenant,
                Notification.event_id == n.event_id,
                Notification.escalation_of.is_(None),
            )
        )
    )
    targets = escalation_targets(session, n, defaults, notified)
    data = _event_data(session, n.event_id)
    patient = session.get(Patient, (n.tenant, n.patient_id))
    provider = session.get(Staff, (n.tenant, n.user_id))
    who = provider.name if provider else n.user_id
    name = patient.full_name if patient else n.patient_id
    if n.entity == "biopsy":
        # A result from an outside lab may name a biopsy the hub never ordered.
        biopsy = session.get(Biopsy, (n.tenant, n.entity_id))
        ordering = biopsy.ordering_provider_id if biopsy else data.get("orderingProviderId")
        site = biopsy.site if biopsy else data.get("site", "")
        diagnosis = biopsy.diagnosis if biopsy else data.get("diagnosis", "")
        event = emit(
            session,
            tenant=n.tenant,
            event_type="biopsy:escalated",
            actor=SYSTEM_ACTOR,
            patient_id=n.patient_id,
            entity_id=n.entity_id,
            data=BiopsyEscalatedData(
                id=n.entity_id,
                patient_id=n.patient_id,
                ordering_provider_id=ordering or n.user_id,
                notification_id=n.id,
                escalated_to=targets,
                unacknowledged_since=n.created_at,
                attempts=n.attempt,
            ),
        )
        title = "Escalated: unacknowledged critical biopsy result"
        body = f"{name}: {site}: {diagnosis}."
    else:
        # No catalog event for escalating a denial: the notifications say it.
        event = EmittedEvent(n.event_id, n.tenant, 0, n.event_type, "", {"patientId": n.patient_id})
        title = f"Escalated: {n.title}"
        body = n.body
    if not targets:
        log.error("alert %s escalated, but tenant %s has nobody to tell", n.id, n.tenant)
        return
    notify(
        session,
        event=event,
        user_ids=targets,
        kind="escalation",
        severity="critical",
        title=title,
        body=f"{body} Not acknowledged by {who} since {iso_utc(n.created_at)}.",
        entity=n.entity,
        entity_id=n.entity_id,
        actor=SYSTEM_ACTOR,
        policy=own,
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
