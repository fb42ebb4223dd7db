"""A tenant's alert routing rules (admins): who hears each alerting event type."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from api.deps import Admin, DbSession, RuntimeDep
from api.domain import alert_rules as domain
from api.schemas import AlertRuleIn, AlertRuleOut, AlertRulePage

router = APIRouter(prefix="/alert-rules", tags=["alert rules"])


def _spec(body: AlertRuleIn) -> domain.RuleSpec:
    return domain.RuleSpec(
        natural_recipient=body.natural_recipient,
        covering_provider_id=body.covering_provider_id,
        care_team=tuple(body.care_team),
        roles=tuple(body.roles),
        on_call=tuple(body.on_call),
        resend_seconds=body.resend_seconds,
        max_resends=body.max_resends,
        escalate_after_seconds=body.escalate_after_seconds,
        escalate_to_roles=tuple(body.escalate_to.roles),
        escalate_to_staff=tuple(body.escalate_to.staff_ids),
    )


@router.get("", response_model=AlertRulePage)
def list_rules(user: Admin, db: DbSession, runtime: RuntimeDep) -> JSONResponse:
    """Every alerting event type's rule, configured or the default."""
    rules = domain.list_rules(db, user.tenant, runtime.alert_policy)
    return JSONResponse({"rules": rules})


@router.get("/{kind}", response_model=AlertRuleOut)
def get_rule(kind: str, user: Admin, db: DbSession, runtime: RuntimeDep) -> JSONResponse:
    return JSONResponse(domain.get_rule(db, user.tenant, kind, runtime.alert_policy))


@router.put("/{kind}", response_model=AlertRuleOut)
def put_rule(
    kind: str, body: AlertRuleIn, user: Admin, db: DbSession, runtime: RuntimeDep
) -> JSONResponse:
    """Replace the rule (the whole body: a field left out takes its default)."""
    rule = domain.put_rule(
        db,
        tenant=user.tenant,
        actor=user.sub,
        kind=kind,
        spec=_spec(body),
        defaults=runtime.alert_policy,
    )
    return JSONResponse(rule)


@router.delete("/{kind}", status_code=204)
def reset_rule(kind: str, user: Admin, db: DbSession) -> Response:
    """Back to the built-in default (204 also when there was no rule)."""
    domain.reset_rule(db, tenant=user.tenant, actor=user.sub, kind=kind)
    return Response(status_code=204)
