"""Today's board as retained snapshots: an appointment booked days ahead had its
snapshot cleared or never kept, so at the start of each clinic day (and when the api
starts) every appointment of the day gets its snapshot published again."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.domain.appointments import Clinic
from api.models import Appointment
from hub.outbox import latest_event, refresh_snapshot


def refresh_day(session: Session, clinic: Clinic, day: date) -> int:
    """Queue a snapshot refresh for each live appointment of ``day`` (every tenant);
    return how many. The appointments are locked so no change to them can commit
    (and be published) between reading their newest event and this refresh."""
    start, end = clinic.day_bounds(day)
    keep_until = end
    appointments = session.scalars(
        select(Appointment)
        .where(
            Appointment.scheduled_start >= start,
            Appointment.scheduled_start < end,
            Appointment.status != "cancelled",
        )
        .order_by(Appointment.tenant, Appointment.scheduled_start)
        .with_for_update()
    ).all()
    count = 0
    for appt in appointments:
        latest = latest_event(session, appt.tenant, appt.id)
        # Pruned past retention (booked long ago, untouched since): nothing to show.
        if latest is not None and latest.type.startswith("appointment:"):
            refresh_snapshot(session, latest=latest, keep_until=keep_until)
            count += 1
    session.commit()
    return count
