"""Today's board: appointments booked on an earlier day get their retained snapshot
when their day begins (the api runs this refresh at start and at each midnight)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from api.domain.appointments import Clinic as ClinicCalendar
from api.domain.board import refresh_day
from hub.db import make_engine, make_sessionmaker
from tests.support.clinic import Clinic
from tests.support.stack import Stack


def test_a_days_appointments_become_retained_snapshots_when_the_day_begins(
    stack: Stack, clinic: Clinic
) -> None:
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).replace(
        hour=9, minute=0, second=0, microsecond=0
    )
    later = clinic.book(start=tomorrow)
    cancelled = clinic.book(start=tomorrow + timedelta(hours=1))
    http = stack.http(clinic.front_desk)
    assert (
        http.post(
            f"/appointments/{cancelled['id']}/status", json={"status": "cancelled"}
        ).status_code
        == 200
    )
    seq_before = clinic.latest_seq()

    probe = stack.connected_probe(clinic.front_desk)
    try:
        probe.subscribe(f"tenants/{clinic.tenant}/patients/+/appointment/+")
        # It is not tomorrow yet: no snapshot is retained for either appointment.
        barrier = clinic.book()
        probe.wait_for(lambda m: m.topic.endswith(barrier["id"]) and bool(m.payload))
        assert not [
            m for m in probe.drain() if later["id"] in m.topic or cancelled["id"] in m.topic
        ]

        # Tomorrow begins: the api's day job does this for the new day.
        engine = make_engine(stack.db.url)
        try:
            with make_sessionmaker(engine)() as session:
                refreshed = refresh_day(session, ClinicCalendar("UTC"), tomorrow.date())
        finally:
            engine.dispose()
        assert refreshed >= 1
        topic = f"tenants/{clinic.tenant}/patients/{clinic.patient_id}/appointment/{later['id']}"
        snap = probe.wait_for(lambda m: m.topic == topic and bool(m.payload))
        body = snap.json()
        assert body["type"] == "appointment:created"
        assert body["data"]["id"] == later["id"]
        # It lasts until the end of that day, not beyond.
        assert snap.expiry is not None
        end_of_day = datetime.combine(tomorrow.date() + timedelta(days=1), datetime.min.time(), UTC)
        assert snap.expiry <= (end_of_day - datetime.now(UTC)).total_seconds() + 5
    finally:
        probe.close()
    # A refresh is not an event: replay and meta/seq do not move.
    assert clinic.latest_seq() == seq_before + 1  # the barrier booking only
    events = http.get("/events", params={"after": seq_before}).json()["events"]
    assert [e["entityId"] for e in events] == [barrier["id"]]
    # A subscriber arriving later gets the refreshed snapshot, and none for the cancelled one.
    late = stack.connected_probe(clinic.front_desk)
    try:
        late.subscribe(f"tenants/{clinic.tenant}/patients/+/appointment/+")
        late.wait_for(lambda m: m.retain and m.topic == topic)
        assert all(cancelled["id"] not in m.topic for m in late.drain())
    finally:
        late.close()
