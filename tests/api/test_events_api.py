"""Service publishing, the catalog, health, and the day's schedule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hub.catalog import CATALOG
from tests.support.clinic import APPOINTMENT_FIELDS, Clinic
from tests.support.stack import Stack


def test_a_service_publishes_a_catalog_event_through_the_outbox(
    stack: Stack, clinic: Clinic
) -> None:
    service = stack.token(clinic.tenant, "lab-gateway", "service")
    probe = stack.connected_probe(clinic.front_desk)
    try:
        probe.subscribe(f"tenants/{clinic.tenant}/patients/{clinic.patient_id}/#")
        r = stack.http(service).post(
            "/events",
            json={
                "type": "prior_auth:approved",
                "patientId": clinic.patient_id,
                "entityId": "pa-1",
                "data": {
                    "id": "pa-1",
                    "patientId": clinic.patient_id,
                    "payerId": "payer-1",
                    "item": "Mohs surgery",
                    "status": "approved",
                },
            },
        )
        assert r.status_code == 202, r.text
        body = r.json()
        assert body["seq"] == clinic.latest_seq()
        assert (
            body["topic"]
            == f"tenants/{clinic.tenant}/patients/{clinic.patient_id}/prior_auth/pa-1/approved"
        )
        msg = probe.wait_event("prior_auth:approved", "pa-1")
        assert msg.topic == body["topic"]
        event = msg.json()
        assert event["id"] == body["id"]
        assert event["actor"] == "lab-gateway"
        assert event["data"]["item"] == "Mohs surgery"
    finally:
        probe.close()


def test_catalog_lists_every_type_with_its_schema(stack: Stack, clinic: Clinic) -> None:
    r = stack.http(clinic.front_desk).get("/events/catalog")
    assert r.status_code == 200
    events = {e["type"]: e for e in r.json()["events"]}
    assert set(events) == set(CATALOG)
    assert "biopsy:escalated" in events  # an extension of the contract's catalog
    appt = events["appointment:created"]["schema"]
    assert set(appt["required"]) >= APPOINTMENT_FIELDS
    assert events["biopsy:result_received"]["severity"] == "critical"
    assert stack.http().get("/events/catalog").status_code == 401


def test_health_and_readiness(stack: Stack) -> None:
    assert stack.http().get("/healthz").json() == {"status": "ok"}
    ready = stack.http().get("/readyz")
    assert ready.status_code == 200
    checks = ready.json()["checks"]
    assert checks["database"]["ok"]
    assert checks["broker"]["ok"]
    assert checks["relayLag"]["ok"]


def test_schedule_lists_one_day_in_order(stack: Stack, clinic: Clinic) -> None:
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).replace(
        hour=10, minute=0, second=0, microsecond=0
    )
    late = clinic.book(start=tomorrow + timedelta(hours=3))
    early = clinic.book(start=tomorrow)
    clinic.book(start=tomorrow + timedelta(days=1))
    http = stack.http(clinic.front_desk)
    day = http.get("/appointments", params={"date": tomorrow.date().isoformat()}).json()
    assert [a["id"] for a in day] == [early["id"], late["id"]]
    assert day[0]["patientName"] == "Ada Lovelace"
    assert (
        http.get(
            "/appointments", params={"date": tomorrow.date().isoformat(), "providerId": "nobody"}
        ).json()
        == []
    )
