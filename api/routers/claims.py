from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import Billing, CurrentUser, DbSession, PayerDecision, RuntimeDep
from api.domain import billing as domain
from api.models import Claim
from api.routers.listing import Limit, PatientFilter, list_rows
from api.schemas import ClaimCreate, ClaimOut, ClaimPatch, ClaimStatusChange
from hub.catalog import ClaimStatus

router = APIRouter(prefix="/claims", tags=["claims"])


@router.post("", status_code=201, response_model=ClaimOut)
def create_claim(body: ClaimCreate, user: Billing, db: DbSession) -> Claim:
    return domain.create_claim(
        db,
        tenant=user.tenant,
        actor=user.sub,
        patient_id=body.patient_id,
        payer_id=body.payer_id,
        amount_cents=body.amount_cents,
        encounter_id=body.encounter_id,
    )


@router.get("", response_model=list[ClaimOut])
def list_claims(
    user: CurrentUser,
    db: DbSession,
    patient_id: PatientFilter = None,
    status: Annotated[ClaimStatus | None, Query()] = None,
    limit: Limit = 100,
) -> list[Claim]:
    return list_rows(db, Claim, user.tenant, limit, patient_id=patient_id, status=status)


@router.get("/{claim_id}", response_model=ClaimOut)
def get_claim(claim_id: str, user: CurrentUser, db: DbSession) -> Claim:
    return domain.get_claim(db, user.tenant, claim_id)


@router.patch("/{claim_id}", response_model=ClaimOut)
def update_claim(claim_id: str, body: ClaimPatch, user: Billing, db: DbSession) -> Claim:
    return domain.update_claim(
        db,
        tenant=user.tenant,
        actor=user.sub,
        claim_id=claim_id,
        changes=body.changes(),
        expected_version=body.version,
    )


@router.post("/{claim_id}/submit", response_model=ClaimOut)
def submit_claim(claim_id: str, user: Billing, db: DbSession) -> Claim:
    return domain.submit_claim(db, tenant=user.tenant, actor=user.sub, claim_id=claim_id)


@router.post("/{claim_id}/status", response_model=ClaimOut)
def change_status(
    claim_id: str, body: ClaimStatusChange, user: PayerDecision, db: DbSession, runtime: RuntimeDep
) -> Claim:
    return domain.change_claim_status(
        db,
        tenant=user.tenant,
        actor=user.sub,
        claim_id=claim_id,
        status=body.status,
        reason=body.reason,
        paid_amount_cents=body.paid_amount_cents,
        patient_responsibility_cents=body.patient_responsibility_cents,
        routing=runtime.routing,
    )
