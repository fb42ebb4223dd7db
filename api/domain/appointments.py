"""Appointments: the state machine, and what each change emits."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.domain.common import active_provider, get_row
from api.errors import Conflict, Invalid
from api.models import Appointment, Location, Patient, Staff
from hub.catalog import AppointmentData
from hub.db import utcnow
from hub.ids import new_id
from hub.outbox import EmittedEvent, Snapshot, emit

# Which status may follow which. Anything else is a 409 and emits nothing.
TRANSITIONS: dict[str, frozenset[str]] = {
    "scheduled": frozenset({"confirmed", "checked_in", "cancelled", "no_show"}),
    "confirmed": frozenset({"scheduled", "checked_in", "cancelled", "no_show"}),
    "checked_in": frozenset({"in_room", "completed"}),
    "in_room": frozenset({"completed"}),
    "completed": frozenset(),
    "cancelled": frozenset(),
    "no_show": frozenset(),
}
RESCHEDULABLE = frozenset({"scheduled", "confirmed"})
MAX_DURATION = timedelta(hours=12)


def event_for_status(status: str) -> str:
    return {"checked_in": "appointment:checkedin", "cancelled": "appointment:cancelled"}.get(
        status, "appointment:updated"
    )


class Clinic:
    """Calendar facts that depend on the clinic's time zone."""

    def __init__(self, timezone: str) -> None:
        self.tz = ZoneInfo(timezone)

    def day_of(self, moment: datetime) -> date:
        return moment.astimezone(self.tz).date()

    def today(self) -> date:
        return self.day_of(utcnow())

    def day_bounds(self, day: date) -> tuple[datetime, datetime]:
        start = datetime.combine(day, time.min, self.tz)
        return start, datetime.combine(day + timedelta(days=1), time.min, self.tz)

    def is_live(self, appt: Appointment) -> bool:
        """On today's board: today, and not cancelled."""
        return appt.status != "cancelled" and self.day_of(appt.scheduled_start) == self.today()

    def snapshot(self, was_live: bool, appt: Appointment) -> Snapshot | None:
        if self.is_live(appt):
            return Snapshot.keep(self.day_bounds(self.today())[1])
        return Snapshot.clear() if was_live else None


def _utc_times(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """Validated, and in UTC as the database and the events carry them."""
    if end <= start:
        msg = "scheduledEnd must be after scheduledStart"
        raise Invalid(msg, details=[{"field": "scheduledEnd", "message": msg}])
    if end - start > MAX_DURATION:
        msg = "an appointment lasts at most 12 hours"
        raise Invalid(msg, details=[{"field": "scheduledEnd", "message": msg}])
    return start.astimezone(UTC), end.astimezone(UTC)


def get_appointment(
    session: Session, tenant: str, appt_id: str, *, lock: bool = False
) -> Appointment:
    return get_row(session, Appointment, tenant, appt_id, "appointment", lock=lock)


def appointment_data(session: Session, appt: Appointment, **extra: object) -> AppointmentData:
    # get_row (Session.get) serves repeats, such as the same provider on every row of
    # a schedule, from the identity map.
    patient = get_row(session, Patient, appt.tenant, appt.patient_id, "patient")
    provider = get_row(session, Staff, appt.tenant, appt.provider_id, "provider")
    location = get_row(session, Location, appt.tenant, appt.location_id, "location")
    return AppointmentData.model_validate(
        {
            "id": appt.id,
            "patient_id": appt.patient_id,
            "patient_name": patient.full_name,
            "provider_id": appt.provider_id,
            "provider_name": provider.name,
            "location_id": appt.location_id,
            "location_name": location.name,
            "scheduled_start": appt.scheduled_start,
            "scheduled_end": appt.scheduled_end,
            "status": appt.status,
            "reason": appt.reason,
            "cancel_reason": appt.cancel_reason,
            **extra,
        }
    )


def _emit(
    session: Session,
    clinic: Clinic,
    appt: Appointment,
    event_type: str,
    actor: str,
    was_live: bool,
    **extra: object,
) -> tuple[AppointmentData, EmittedEvent]:
    data = appointment_data(session, appt, **extra)
    emitted = emit(
        session,
        tenant=appt.tenant,
        event_type=event_type,
        actor=actor,
        patient_id=appt.patient_id,
        entity_id=appt.id,
        data=data,
        snapshot=clinic.snapshot(was_live, appt),
    )
    return data, emitted


def create(
    session: Session,
    clinic: Clinic,
    *,
    tenant: str,
    actor: str,
    patient_id: str,
    provider_id: str,
    location_id: str,
    start: datetime,
    end: datetime,
    reason: str | None,
) -> tuple[Appointment, AppointmentData]:
    start, end = _utc_times(start, end)
    get_row(session, Patient, tenant, patient_id, "patient")
    active_provider(session, tenant, provider_id)
    get_row(session, Location, tenant, location_id, "location")
    now = utcnow()
    appt = Appointment(
        id=new_id("a"),
        tenant=tenant,
        patient_id=patient_id,
        provider_id=provider_id,
        location_id=location_id,
        scheduled_start=start,
        scheduled_end=end,
        status="scheduled",
        reason=reason,
        created_at=now,
        updated_at=now,
        version=1,
    )
    session.add(appt)
    session.flush()
    data, _ = _emit(session, clinic, appt, "appointment:created", actor, was_live=False)
    session.commit()
    return appt, data


def reschedule(
    session: Session,
    clinic: Clinic,
    *,
    tenant: str,
    actor: str,
    appt_id: str,
    start: datetime,
    end: datetime,
) -> tuple[Appointment, AppointmentData]:
    start, end = _utc_times(start, end)
    appt = get_appointment(session, tenant, appt_id, lock=True)
    if appt.status not in RESCHEDULABLE:
        raise Conflict(f"a {appt.status} appointment cannot be rescheduled")
    was_live = clinic.is_live(appt)
    previous = (appt.scheduled_start, appt.scheduled_end)
    appt.scheduled_start, appt.scheduled_end = start, end
    appt.updated_at = utcnow()
    appt.version += 1
    data, _ = _emit(
        session,
        clinic,
        appt,
        "appointment:updated",
        actor,
        was_live,
        previous_scheduled_start=previous[0],
        previous_scheduled_end=previous[1],
    )
    session.commit()
    return appt, data


def change_status(
    session: Session,
    clinic: Clinic,
    *,
    tenant: str,
    actor: str,
    appt_id: str,
    status: str,
    reason: str | None,
    kiosk_name: str | None = None,
) -> tuple[Appointment, AppointmentData]:
    """``kiosk_name``: the check-in came from that kiosk (``actor`` is its id)."""
    appt = get_appointment(session, tenant, appt_id, lock=True)
    if status not in TRANSITIONS[appt.status]:
        raise Conflict(f"cannot change a {appt.status} appointment to {status}")
    was_live = clinic.is_live(appt)
    previous = appt.status
    appt.status = status
    if status == "cancelled":
        appt.cancel_reason = reason
    appt.updated_at = utcnow()
    appt.version += 1
    extra: dict[str, object] = {"kiosk_name": kiosk_name} if kiosk_name else {}
    data, _ = _emit(
        session,
        clinic,
        appt,
        event_for_status(status),
        actor,
        was_live,
        previous_status=previous,
        **extra,
    )
    session.commit()
    return appt, data


def list_day(
    session: Session,
    clinic: Clinic,
    *,
    tenant: str,
    day: date,
    provider_id: str | None = None,
    patient_id: str | None = None,
) -> list[tuple[Appointment, AppointmentData]]:
    start, end = clinic.day_bounds(day)
    query = select(Appointment).where(
        Appointment.tenant == tenant,
        Appointment.scheduled_start >= start,
        Appointment.scheduled_start < end,
    )
    if provider_id:
        query = query.where(Appointment.provider_id == provider_id)
    if patient_id:
        query = query.where(Appointment.patient_id == patient_id)
    rows = session.scalars(query.order_by(Appointment.scheduled_start, Appointment.id)).all()
    return [(a, appointment_data(session, a)) for a in rows]
