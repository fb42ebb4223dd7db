from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import func, or_, select

from api.deps import Cashier, Clinical, CurrentUser, DbSession
from api.domain import patients as domain
from api.models import Patient
from api.schemas import InsuranceVerify, PatientCreate, PatientOut, PatientUpdate
from hub.db import utcnow
from hub.ids import new_id

router = APIRouter(prefix="/patients", tags=["patients"])


@router.post("", status_code=201, response_model=PatientOut)
def create_patient(body: PatientCreate, user: Clinical, db: DbSession) -> Patient:
    now = utcnow()
    patient = Patient(
        id=new_id("p"),
        tenant=user.tenant,
        **body.model_dump(),
        balance_cents=0,
        created_at=now,
        updated_at=now,
        version=1,
    )
    db.add(patient)
    db.commit()
    return patient


@router.get("", response_model=list[PatientOut])
def search_patients(
    user: CurrentUser,
    db: DbSession,
    q: Annotated[str | None, Query(max_length=100, description="name prefix")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[Patient]:
    query = select(Patient).where(Patient.tenant == user.tenant)
    if q:
        like = f"{q.lower()}%"
        query = query.where(
            or_(func.lower(Patient.first_name).like(like), func.lower(Patient.last_name).like(like))
        )
    return list(
        db.scalars(query.order_by(Patient.last_name, Patient.first_name, Patient.id).limit(limit))
    )


@router.get("/{patient_id}", response_model=PatientOut)
def get_patient(patient_id: str, user: CurrentUser, db: DbSession) -> Patient:
    return domain.get_patient(db, user.tenant, patient_id)


@router.put("/{patient_id}", response_model=PatientOut)
def update_patient(patient_id: str, body: PatientUpdate, user: Clinical, db: DbSession) -> Patient:
    """Change demographics: the fields sent (at least one); ``version`` guards against
    overwriting a change made meanwhile. Emits ``patient:updated`` if anything changed."""
    return domain.update(
        db,
        tenant=user.tenant,
        actor=user.sub,
        patient_id=patient_id,
        changes=body.changes(),
        expected_version=body.version,
    )


@router.post("/{patient_id}/insurance/verify", response_model=PatientOut)
def verify_insurance(
    patient_id: str, body: InsuranceVerify, user: Cashier, db: DbSession
) -> Patient:
    return domain.verify_insurance(
        db,
        tenant=user.tenant,
        actor=user.sub,
        patient_id=patient_id,
        payer_id=body.payer_id,
        member_id=body.member_id,
        eligible=body.eligible,
    )
