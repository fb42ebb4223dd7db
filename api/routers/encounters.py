from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import Clinician, CurrentUser, DbSession, Provider
from api.domain import encounters as domain
from api.models import Encounter
from api.routers.listing import Limit, PatientFilter, list_rows
from api.schemas import EncounterCreate, EncounterOut, EncounterPatch
from hub.catalog import EncounterStatus

router = APIRouter(prefix="/encounters", tags=["encounters"])


@router.post("", status_code=201, response_model=EncounterOut)
def open_encounter(body: EncounterCreate, user: Clinician, db: DbSession) -> Encounter:
    return domain.open_encounter(
        db,
        tenant=user.tenant,
        actor=user.sub,
        patient_id=body.patient_id,
        provider_id=body.provider_id,
        appointment_id=body.appointment_id,
        chief_complaint=body.chief_complaint,
    )


@router.get("", response_model=list[EncounterOut])
def list_encounters(
    user: CurrentUser,
    db: DbSession,
    patient_id: PatientFilter = None,
    status: Annotated[EncounterStatus | None, Query()] = None,
    limit: Limit = 100,
) -> list[Encounter]:
    return list_rows(db, Encounter, user.tenant, limit, patient_id=patient_id, status=status)


@router.get("/{encounter_id}", response_model=EncounterOut)
def get_encounter(encounter_id: str, user: CurrentUser, db: DbSession) -> Encounter:
    return domain.get_encounter(db, user.tenant, encounter_id)


@router.patch("/{encounter_id}", response_model=EncounterOut)
def document(encounter_id: str, body: EncounterPatch, user: Clinician, db: DbSession) -> Encounter:
    return domain.document(
        db,
        tenant=user.tenant,
        actor=user.sub,
        enc_id=encounter_id,
        changes=body.changes(),
        expected_version=body.version,
    )


@router.post("/{encounter_id}/complete", response_model=EncounterOut)
def complete(encounter_id: str, user: Clinician, db: DbSession) -> Encounter:
    return domain.complete(db, tenant=user.tenant, actor=user.sub, enc_id=encounter_id)


@router.post("/{encounter_id}/sign", response_model=EncounterOut)
def sign(encounter_id: str, user: Provider, db: DbSession) -> Encounter:
    return domain.sign(db, tenant=user.tenant, actor=user.sub, enc_id=encounter_id)
