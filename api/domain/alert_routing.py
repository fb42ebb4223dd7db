"""Alert routing: one function turns an alerting event into notifications by the
tenant's rules (api.domain.alert_rules), whichever way the event arrived.

- The hub's own routes (a result, a denial) route their event in their own
  transaction (``route_in_transaction``): the alert exists if and only if the change
  committed, as before. They leave an ``alert_routed`` row behind.
- Events that arrive through ``POST /events`` and ``/events/batch`` are committed by
  the group-commit writer, which knows nothing of rules. The *alert router*
  (``route_committed``) reads committed alerting events after a per-tenant cursor,
  routes those without an ``alert_routed`` row, and advances the cursor, all in one
  transaction: nothing is lost across a crash (the cursor moves only with the
  notifications), and nothing is routed twice (the cursor row is locked, and an event
  a route already handled is passed by). See docs/DECISIONS.md.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import groupby
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from api.domain import notifications
from api.domain.alert_rules import AlertPolicy, resolve, rule_for
from api.models import AlertCursor, AlertRouted, Notification, Patient
from hub.catalog import ALERTING_TYPES, get_event_type
from hub.outbox import EmittedEvent, OutboxEvent

log = logging.getLogger("api.alert_routing")

ROUTER_ACTOR = "hub.alert-router"


def is_critical(diagnosis: str, concerning: bool | None, terms: Sequence[str]) -> bool:
    text = " ".join(diagnosis.lower().split())
    return bool(concerning) or any(term in text for term in terms)


@dataclass(frozen=True, slots=True)
class RoutingConfig:
    critical_terms: Sequence[str]
    defaults: AlertPolicy


@dataclass(frozen=True, slots=True)
class _Alert:
    kind: str
    severity: str
    title: str
    body: str
    natural: str | None


def _describe(session: Session, event: EmittedEvent, config: RoutingConfig) -> _Alert | None:
    """What the alert says and who its natural recipient is; None: not alerting (a
    result that is not critical)."""
    data: dict[str, Any] = event.envelope.get("data") or {}
    patient = session.get(Patient, (event.tenant, event.envelope["patientId"]))
    name = patient.full_name if patient else event.envelope["patientId"]
    if event.type == "biopsy:result_received":
        diagnosis = data.get("diagnosis") or ""
        if not (
            data.get("critical")
            or is_critical(diagnosis, data.get("concerning"), config.critical_terms)
        ):
            return None
        return _Alert(
            "critical_result",
            "critical",
            "Critical biopsy result",
            f"{name}: {data.get('site', '')}: {diagnosis}",
            data.get("orderingProviderId"),
        )
    if event.type == "claim:denied":
        return _Alert(
            "claim_denied",
            "alert",
            "Claim denied",
            f"{name}: claim {data.get('id')} to {data.get('payerId')} was denied: "
            f"{data.get('reason')}",
            None,
        )
    if event.type == "prior_auth:denied":
        because = f": {data['reason']}" if data.get("reason") else ""
        return _Alert(
            "prior_auth_denied",
            "alert",
            "Prior authorization denied",
            f"{name}: {data.get('item')} ({data.get('payerId')}) was denied{because}",
            data.get("requestedBy"),
        )
    return None


def route_event(
    session: Session, event: EmittedEvent, config: RoutingConfig, *, actor: str
) -> list[Notification]:
    """Notify whom the tenant's rule names for ``event``, in the caller's transaction."""
    if event.type not in ALERTING_TYPES:
        return []
    alert = _describe(session, event, config)
    if alert is None:
        return []
    rule = rule_for(session, event.tenant, event.type, config.defaults)
    ids = [
        alert.natural if rule.natural_recipient else None,
        rule.covering_provider_id,
        *rule.care_team,
        *rule.on_call,
    ]
    users = resolve(session, event.tenant, ids, rule.roles)
    if not users and alert.severity == "critical":
        # A critical result must reach somebody: an outside lab's ordering provider the
        # directory does not know, and no rule: the escalation chain hears it at once,
        # else the tenant's admins, else its providers.
        for staff, roles in (
            (rule.escalate_to_staff, rule.escalate_to_roles),
            ((), ("admin",)),
            ((), ("provider",)),
        ):
            users = resolve(session, event.tenant, staff, roles)
            if users:
                break
        else:
            log.error("critical event %s of %s reaches nobody", event.id, event.tenant)
    data = event.envelope.get("data") or {}
    return notifications.notify(
        session,
        event=event,
        user_ids=users,
        kind=alert.kind,
        severity=alert.severity,
        title=alert.title,
        body=alert.body,
        entity=get_event_type(event.type).entity,
        entity_id=str(event.envelope.get("entityId") or data.get("id")),
        actor=actor,
        policy=rule.policy,
        escalate=rule.escalates,
    )


def route_in_transaction(
    session: Session, event: EmittedEvent, config: RoutingConfig, *, actor: str
) -> list[Notification]:
    """A route's own alerting event: routed now, and marked so the router passes it by."""
    session.add(AlertRouted(tenant=event.tenant, event_id=event.id))
    return route_event(session, event, config, actor=actor)


def _pending_query(limit: int) -> Any:
    return (
        select(OutboxEvent)
        .outerjoin(AlertCursor, AlertCursor.tenant == OutboxEvent.tenant)
        .where(
            OutboxEvent.type.in_(ALERTING_TYPES),
            OutboxEvent.seq.is_not(None),
            OutboxEvent.seq > func.coalesce(AlertCursor.last_seq, 0),
        )
        .order_by(OutboxEvent.tenant, OutboxEvent.seq)
        .limit(limit)
    )


def any_pending(session: Session) -> bool:
    """A cheap read first, so the router writes only when there is something to do."""
    return session.scalar(_pending_query(1).with_only_columns(OutboxEvent.pk)) is not None


def route_committed(session: Session, config: RoutingConfig, *, batch: int = 200) -> int:
    """Route committed alerting events past each tenant's cursor; return how many
    events the cursor passed. Seqs commit in order without gaps (hub.outbox), so an
    event visible at seq S means every event before S of its tenant is visible too,
    and a cursor at S never skips one still being written."""
    rows = session.scalars(_pending_query(batch)).all()
    passed = 0
    for tenant, group in groupby(rows, key=lambda r: r.tenant):
        insert = (
            postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
        )
        session.execute(
            insert(AlertCursor)
            .values(tenant=tenant, last_seq=0)
            .on_conflict_do_nothing(index_elements=["tenant"])
        )
        cursor = session.scalar(
            select(AlertCursor)
            .where(AlertCursor.tenant == tenant)
            .with_for_update(skip_locked=True)
            .execution_options(populate_existing=True)
        )
        if cursor is None:  # another process's router holds this tenant
            continue
        for row in group:
            assert row.seq is not None
            if row.seq <= cursor.last_seq:
                continue
            marker = session.get(AlertRouted, (tenant, row.id))
            if marker is not None:
                session.delete(marker)  # routed by its own route; the cursor passes it
            else:
                envelope = row.envelope()
                event = EmittedEvent(row.id, tenant, row.seq, row.type, row.topic, envelope)
                sent = route_event(session, event, config, actor=ROUTER_ACTOR)
                if sent:
                    log.info("routed %s %s to %d people", row.type, row.id, len(sent))
            cursor.last_seq = row.seq
            passed += 1
    session.commit()
    return passed
