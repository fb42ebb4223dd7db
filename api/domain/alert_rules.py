"""Per-tenant alert rules: who hears each alerting event type, and how an unacknowledged
alert is re-sent and escalated (docs/notifications.md, "Routing rules").

A tenant without a rule for a type gets the built-in default, which is the hub's
behaviour before rules existed: a critical biopsy result alerts the ordering provider
and escalates to the admins on the ``HUB_CRITICAL_*`` schedule; a claim denial alerts
the billing role; a prior-auth denial alerts the requester and the billing role.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.errors import Invalid, NotFound
from api.models import AlertRule, Staff
from hub.audit import record_audit
from hub.catalog import ALERTING_TYPES
from hub.db import utcnow
from hub.envelope import iso_utc

# The roles a rule may name: those of the staff directory.
STAFF_ROLES = frozenset({"front_desk", "provider", "billing", "admin"})


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


@dataclass(frozen=True, slots=True)
class RuleSpec:
    """Who hears one alerting event type, and its escalation chain."""

    natural_recipient: bool  # the ordering provider, the requester
    covering_provider_id: str | None = None
    care_team: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    on_call: tuple[str, ...] = ()
    resend_seconds: float | None = None  # None: sent once
    max_resends: int = 0
    escalate_after_seconds: float | None = None  # None: never escalated
    escalate_to_roles: tuple[str, ...] = ()
    escalate_to_staff: tuple[str, ...] = field(default=())

    @property
    def policy(self) -> AlertPolicy | None:
        """The re-send and escalation schedule; None for an alert sent once."""
        if self.resend_seconds is None and self.escalate_after_seconds is None:
            return None
        return AlertPolicy(
            resend_after=timedelta(seconds=self.resend_seconds or 1.0),
            max_resends=self.max_resends if self.resend_seconds is not None else 0,
            # Never reached when the rule does not escalate (no escalate_at is set).
            escalate_after=timedelta(seconds=self.escalate_after_seconds or 0.0),
        )

    @property
    def escalates(self) -> bool:
        return self.escalate_after_seconds is not None

    def staff_ids(self) -> set[str]:
        ids = {*self.care_team, *self.on_call, *self.escalate_to_staff}
        if self.covering_provider_id:
            ids.add(self.covering_provider_id)
        return ids


def default_rule(kind: str, defaults: AlertPolicy) -> RuleSpec:
    if kind == "biopsy:result_received":
        return RuleSpec(
            natural_recipient=True,
            resend_seconds=defaults.resend_after.total_seconds(),
            max_resends=defaults.max_resends,
            escalate_after_seconds=defaults.escalate_after.total_seconds(),
            escalate_to_roles=("admin",),
        )
    if kind == "claim:denied":
        return RuleSpec(natural_recipient=False, roles=("billing",))
    if kind == "prior_auth:denied":
        return RuleSpec(natural_recipient=True, roles=("billing",))
    raise ValueError(f"{kind} is not an alerting event type")


def _spec(row: AlertRule) -> RuleSpec:
    return RuleSpec(
        natural_recipient=row.natural_recipient,
        covering_provider_id=row.covering_provider_id,
        care_team=tuple(row.care_team or ()),
        roles=tuple(row.roles or ()),
        on_call=tuple(row.on_call or ()),
        resend_seconds=row.resend_seconds,
        max_resends=row.max_resends,
        escalate_after_seconds=row.escalate_after_seconds,
        escalate_to_roles=tuple(row.escalate_to_roles or ()),
        escalate_to_staff=tuple(row.escalate_to_staff or ()),
    )


def _check_kind(kind: str) -> None:
    if kind not in ALERTING_TYPES:
        raise NotFound(f"no alert rule for {kind!r}; alerting types: {', '.join(ALERTING_TYPES)}")


def rule_for(session: Session, tenant: str, kind: str, defaults: AlertPolicy) -> RuleSpec:
    """The tenant's rule for ``kind``, or the built-in default."""
    row = session.get(AlertRule, (tenant, kind))
    return _spec(row) if row is not None else default_rule(kind, defaults)


def active_staff(session: Session, tenant: str) -> list[Staff]:
    return list(
        session.scalars(
            select(Staff).where(Staff.tenant == tenant, Staff.active.is_(True)).order_by(Staff.id)
        )
    )


def resolve(
    session: Session, tenant: str, ids: Iterable[str | None], roles: Sequence[str]
) -> list[str]:
    """Active staff among ``ids`` (in that order), then those holding any of ``roles``;
    each once. An id no longer in the directory (or deactivated) is skipped."""
    staff = {s.id: s for s in active_staff(session, tenant)}
    out = [i for i in ids if i is not None and i in staff]
    out += [s.id for s in staff.values() if set(roles) & set(s.roles or [])]
    return list(dict.fromkeys(out))


def rule_json(kind: str, spec: RuleSpec, row: AlertRule | None) -> dict[str, Any]:
    return {
        "kind": kind,
        "configured": row is not None,
        "naturalRecipient": spec.natural_recipient,
        "coveringProviderId": spec.covering_provider_id,
        "careTeam": list(spec.care_team),
        "roles": list(spec.roles),
        "onCall": list(spec.on_call),
        "resendSeconds": spec.resend_seconds,
        "maxResends": spec.max_resends,
        "escalateAfterSeconds": spec.escalate_after_seconds,
        "escalateTo": {
            "roles": list(spec.escalate_to_roles),
            "staffIds": list(spec.escalate_to_staff),
        },
        "updatedBy": row.updated_by if row else None,
        "updatedAt": iso_utc(row.updated_at) if row else None,
        "version": row.version if row else 0,
    }


def get_rule(session: Session, tenant: str, kind: str, defaults: AlertPolicy) -> dict[str, Any]:
    _check_kind(kind)
    row = session.get(AlertRule, (tenant, kind))
    spec = _spec(row) if row is not None else default_rule(kind, defaults)
    return rule_json(kind, spec, row)


def list_rules(session: Session, tenant: str, defaults: AlertPolicy) -> list[dict[str, Any]]:
    return [get_rule(session, tenant, kind, defaults) for kind in ALERTING_TYPES]


def _validate(session: Session, tenant: str, kind: str, spec: RuleSpec) -> None:
    """Every named person is an active staff member of this tenant (another tenant's
    id is simply unknown here), the covering provider is a provider, every role is a
    directory role, the rule reaches somebody, and a critical result's rule escalates
    (a body that leaves the escalation out must not switch it off)."""
    staff = {s.id: s for s in active_staff(session, tenant)}
    errors: list[dict[str, str]] = []

    def check_ids(name: str, ids: Iterable[str]) -> None:
        for i, staff_id in enumerate(ids):
            if staff_id not in staff:
                errors.append(
                    {"field": f"{name}.{i}", "message": f"unknown staff member {staff_id}"}
                )

    if spec.covering_provider_id is not None:
        covering = staff.get(spec.covering_provider_id)
        if covering is None or not covering.is_provider:
            errors.append(
                {
                    "field": "coveringProviderId",
                    "message": f"{spec.covering_provider_id} is not an active provider",
                }
            )
    check_ids("careTeam", spec.care_team)
    check_ids("onCall", spec.on_call)
    check_ids("escalateTo.staffIds", spec.escalate_to_staff)
    for name, roles in (("roles", spec.roles), ("escalateTo.roles", spec.escalate_to_roles)):
        for i, role in enumerate(roles):
            if role not in STAFF_ROLES:
                errors.append({"field": f"{name}.{i}", "message": f"unknown role {role}"})
    if not (
        spec.natural_recipient
        or spec.covering_provider_id
        or spec.care_team
        or spec.roles
        or spec.on_call
    ):
        errors.append({"field": "naturalRecipient", "message": "the rule reaches nobody"})
    if spec.escalates and not (spec.escalate_to_roles or spec.escalate_to_staff):
        errors.append({"field": "escalateTo", "message": "an escalation needs somebody to reach"})
    if kind == "biopsy:result_received" and not spec.escalates:
        errors.append(
            {
                "field": "escalateAfterSeconds",
                "message": "a critical result's rule must escalate (escalateAfterSeconds "
                "and escalateTo): an unacknowledged result may not stay with one person",
            }
        )
    if errors:
        raise Invalid("the alert rule is invalid", details=errors)


def put_rule(
    session: Session, *, tenant: str, actor: str, kind: str, spec: RuleSpec, defaults: AlertPolicy
) -> dict[str, Any]:
    """Replace the tenant's rule for ``kind`` (validated, audited) and commit."""
    _check_kind(kind)
    # Each id once, in the order given.
    spec = replace(
        spec,
        care_team=tuple(dict.fromkeys(spec.care_team)),
        roles=tuple(dict.fromkeys(spec.roles)),
        on_call=tuple(dict.fromkeys(spec.on_call)),
        escalate_to_roles=tuple(dict.fromkeys(spec.escalate_to_roles)),
        escalate_to_staff=tuple(dict.fromkeys(spec.escalate_to_staff)),
    )
    _validate(session, tenant, kind, spec)
    row = session.get(AlertRule, (tenant, kind), with_for_update=True)
    now = utcnow()
    if row is None:
        row = AlertRule(tenant=tenant, kind=kind, version=0)
        session.add(row)
    row.natural_recipient = spec.natural_recipient
    row.covering_provider_id = spec.covering_provider_id
    row.care_team = list(spec.care_team)
    row.roles = list(spec.roles)
    row.on_call = list(spec.on_call)
    row.resend_seconds = spec.resend_seconds
    row.max_resends = spec.max_resends
    row.escalate_after_seconds = spec.escalate_after_seconds
    row.escalate_to_roles = list(spec.escalate_to_roles)
    row.escalate_to_staff = list(spec.escalate_to_staff)
    row.updated_by = actor
    row.updated_at = now
    row.version += 1
    # Staff ids, roles and timings: no patient data is involved in a rule.
    record_audit(
        session,
        tenant=tenant,
        actor=actor,
        actor_kind="user",
        kind="alert_rule.updated",
        subject=kind,
        details={"version": row.version, **_audit_details(spec)},
    )
    session.commit()
    return rule_json(kind, spec, row)


def reset_rule(session: Session, *, tenant: str, actor: str, kind: str) -> bool:
    """Remove the tenant's rule for ``kind`` (the default applies again)."""
    _check_kind(kind)
    row = session.get(AlertRule, (tenant, kind), with_for_update=True)
    if row is None:
        session.rollback()
        return False
    session.delete(row)
    record_audit(
        session,
        tenant=tenant,
        actor=actor,
        actor_kind="user",
        kind="alert_rule.reset",
        subject=kind,
    )
    session.commit()
    return True


def _audit_details(spec: RuleSpec) -> dict[str, Any]:
    return {
        "naturalRecipient": spec.natural_recipient,
        "coveringProviderId": spec.covering_provider_id,
        "careTeam": list(spec.care_team),
        "roles": list(spec.roles),
        "onCall": list(spec.on_call),
        "resendSeconds": spec.resend_seconds,
        "maxResends": spec.max_resends,
        "escalateAfterSeconds": spec.escalate_after_seconds,
        "escalateToRoles": list(spec.escalate_to_roles),
        "escalateToStaff": list(spec.escalate_to_staff),
    }
