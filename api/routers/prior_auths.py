from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import CurrentUser, DbSession, PayerDecision, Requester, RuntimeDep
from api.domain import prior_auths as domain
from api.models import PriorAuth
from api.routers.listing import Limit, PatientFilter, list_rows
from api.schemas import PriorAuthCreate, PriorAuthOut, PriorAuthStatusChange
from hub.catalog import PriorAuthStatus

router = APIRouter(prefix="/prior-auths", tags=["prior authorizations"])


@router.post("", status_code=201, response_model=PriorAuthOut)
def request_prior_auth(body: PriorAuthCreate, user: Requester, db: DbSession) -> PriorAuth:
    return domain.request(
        db,
        tenant=user.tenant,
        actor=user.sub,
        actor_is_provider=user.has_any("provider"),
        patient_id=body.patient_id,
        payer_id=body.payer_id,
        item=body.item,
        requesting_provider_id=body.requesting_provider_id,
        reason=body.reason,
    )


@router.get("", response_model=list[PriorAuthOut])
def list_prior_auths(
    user: CurrentUser,
    db: DbSession,
    patient_id: PatientFilter = None,
    status: Annotated[PriorAuthStatus | None, Query()] = None,
    limit: Limit = 100,
) -> list[PriorAuth]:
    return list_rows(db, PriorAuth, user.tenant, limit, patient_id=patient_id, status=status)


@router.get("/{prior_auth_id}", response_model=PriorAuthOut)
def get_prior_auth(prior_auth_id: str, user: CurrentUser, db: DbSession) -> PriorAuth:
    return domain.get_prior_auth(db, user.tenant, prior_auth_id)


@router.post("/{prior_auth_id}/status", response_model=PriorAuthOut)
def change_status(
    prior_auth_id: str,
    body: PriorAuthStatusChange,
    user: PayerDecision,
    db: DbSession,
    runtime: RuntimeDep,
) -> PriorAuth:
    return domain.change_status(
        db,
        tenant=user.tenant,
        actor=user.sub,
        pa_id=prior_auth_id,
        status=body.status,
        reason=body.reason,
        routing=runtime.routing,
    )
