from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from api.deps import Clinical, Clinician, CurrentUser, DbSession, Provider, ResultEntry
from api.domain import biopsies as domain
from api.models import Biopsy
from api.routers.listing import Limit, PatientFilter, list_rows
from api.schemas import BiopsyCreate, BiopsyOut, BiopsyPatch, BiopsyResult
from hub.catalog import BiopsyStatus

router = APIRouter(prefix="/biopsies", tags=["biopsies"])


@router.post("", status_code=201, response_model=BiopsyOut)
def order_biopsy(body: BiopsyCreate, user: Clinician, db: DbSession) -> Biopsy:
    return domain.order(
        db,
        tenant=user.tenant,
        actor=user.sub,
        patient_id=body.patient_id,
        ordering_provider_id=body.ordering_provider_id,
        site=body.site,
        encounter_id=body.encounter_id,
    )


@router.get("", response_model=list[BiopsyOut])
def list_biopsies(
    user: CurrentUser,
    db: DbSession,
    patient_id: PatientFilter = None,
    status: Annotated[BiopsyStatus | None, Query()] = None,
    ordering_provider_id: Annotated[
        str | None, Query(alias="orderingProviderId", max_length=64)
    ] = None,
    limit: Limit = 100,
) -> list[Biopsy]:
    return list_rows(
        db,
        Biopsy,
        user.tenant,
        limit,
        patient_id=patient_id,
        status=status,
        ordering_provider_id=ordering_provider_id,
    )


@router.get("/{biopsy_id}", response_model=BiopsyOut)
def get_biopsy(biopsy_id: str, user: CurrentUser, db: DbSession) -> Biopsy:
    return domain.get_biopsy(db, user.tenant, biopsy_id)


@router.patch("/{biopsy_id}", response_model=BiopsyOut)
def update_biopsy(biopsy_id: str, body: BiopsyPatch, user: Clinical, db: DbSession) -> Biopsy:
    return domain.update(
        db,
        tenant=user.tenant,
        actor=user.sub,
        biopsy_id=biopsy_id,
        site=body.site,
        status=body.status,
        expected_version=body.version,
    )


@router.post("/{biopsy_id}/result", response_model=BiopsyOut)
def record_result(
    biopsy_id: str, body: BiopsyResult, user: ResultEntry, db: DbSession, request: Request
) -> Biopsy:
    runtime = request.app.state.runtime
    return domain.record_result(
        db,
        tenant=user.tenant,
        actor=user.sub,
        biopsy_id=biopsy_id,
        diagnosis=body.diagnosis,
        concerning=body.concerning,
        routing=runtime.routing,
    )


@router.post("/{biopsy_id}/review", response_model=BiopsyOut)
def review(biopsy_id: str, user: Provider, db: DbSession) -> Biopsy:
    return domain.review(db, tenant=user.tenant, actor=user.sub, biopsy_id=biopsy_id)
