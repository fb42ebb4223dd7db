from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query, Request

from api.deps import Clinical, CurrentUser, DbSession
from api.domain import appointments as domain
from api.schemas import AppointmentCreate, AppointmentOut, Reschedule, StatusChange, appointment_out

router = APIRouter(prefix="/appointments", tags=["appointments"])


def _clinic(request: Request) -> domain.Clinic:
    clinic: domain.Clinic = request.app.state.clinic
    return clinic


@router.post("", status_code=201, response_model=AppointmentOut)
def create_appointment(
    body: AppointmentCreate, user: Clinical, db: DbSession, request: Request
) -> AppointmentOut:
    appt, data = domain.create(
        db,
        _clinic(request),
        tenant=user.tenant,
        actor=user.sub,
        patient_id=body.patient_id,
        provider_id=body.provider_id,
        location_id=body.location_id,
        start=body.scheduled_start,
        end=body.scheduled_end,
        reason=body.reason,
    )
    return appointment_out(appt, data)


@router.get("", response_model=list[AppointmentOut])
def list_appointments(
    user: CurrentUser,
    db: DbSession,
    request: Request,
    day: Annotated[
        date | None, Query(alias="date", description="clinic-local day; default today")
    ] = None,
    provider_id: Annotated[str | None, Query(alias="providerId", max_length=64)] = None,
    patient_id: Annotated[str | None, Query(alias="patientId", max_length=64)] = None,
) -> list[AppointmentOut]:
    clinic = _clinic(request)
    rows = domain.list_day(
        db,
        clinic,
        tenant=user.tenant,
        day=day or clinic.today(),
        provider_id=provider_id,
        patient_id=patient_id,
    )
    return [appointment_out(a, d) for a, d in rows]


@router.get("/{appointment_id}", response_model=AppointmentOut)
def get_appointment(appointment_id: str, user: CurrentUser, db: DbSession) -> AppointmentOut:
    appt = domain.get_appointment(db, user.tenant, appointment_id)
    return appointment_out(appt, domain.appointment_data(db, appt))


@router.post("/{appointment_id}/reschedule", response_model=AppointmentOut)
def reschedule(
    appointment_id: str, body: Reschedule, user: Clinical, db: DbSession, request: Request
) -> AppointmentOut:
    appt, data = domain.reschedule(
        db,
        _clinic(request),
        tenant=user.tenant,
        actor=user.sub,
        appt_id=appointment_id,
        start=body.scheduled_start,
        end=body.scheduled_end,
    )
    return appointment_out(appt, data)


@router.post("/{appointment_id}/status", response_model=AppointmentOut)
def change_status(
    appointment_id: str, body: StatusChange, user: Clinical, db: DbSession, request: Request
) -> AppointmentOut:
    appt, data = domain.change_status(
        db,
        _clinic(request),
        tenant=user.tenant,
        actor=user.sub,
        appt_id=appointment_id,
        status=body.status,
        reason=body.reason,
    )
    return appointment_out(appt, data)
