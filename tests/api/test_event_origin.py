"""The connection that made a change: ``X-Hub-Connection`` on a write becomes the
``origin`` of the events it emits, so a window can tell its own changes from another
window's of the same user."""

from __future__ import annotations

from typing import Any

import pytest

from hub.envelope import parse_origin
from tests.support.clinic import Clinic
from tests.support.stack import Stack

HEADER = "X-Hub-Connection"


def _events_after(clinic: Clinic, after: int) -> list[dict[str, Any]]:
    r = clinic.stack.http(clinic.front_desk).get("/events", params={"after": after})
    assert r.status_code == 200, r.text
    events: list[dict[str, Any]] = r.json()["events"]
    return events


def _check_in(clinic: Clinic, headers: dict[str, str]) -> dict[str, Any]:
    appt = clinic.book()
    before = clinic.latest_seq()
    r = clinic.stack.http(clinic.front_desk).post(
        f"/appointments/{appt['id']}/status", json={"status": "checked_in"}, headers=headers
    )
    assert r.status_code == 200, r.text
    (event,) = _events_after(clinic, before)
    assert event["type"] == "appointment:checkedin"
    return event


def test_a_route_write_names_its_connection_as_origin(stack: Stack, clinic: Clinic) -> None:
    event = _check_in(clinic, {HEADER: f"{clinic.tenant}.fd-1.3f9a0c1d"})
    assert event["origin"] == f"{clinic.tenant}.fd-1.3f9a0c1d"
    assert event["actor"] == "fd-1"


def test_a_write_without_the_header_has_no_origin(stack: Stack, clinic: Clinic) -> None:
    assert "origin" not in _check_in(clinic, {})


@pytest.mark.parametrize("value", ["a/b", "x" * 129, "-leading", "has space", "tenants/+/#"])
def test_a_malformed_connection_id_is_ignored_not_refused(
    stack: Stack, clinic: Clinic, value: str
) -> None:
    assert "origin" not in _check_in(clinic, {HEADER: value})


def test_published_events_carry_the_origin_through_the_writer(stack: Stack, clinic: Clinic) -> None:
    service = stack.token(clinic.tenant, "lab-gateway", "service")
    before = clinic.latest_seq()
    event = {
        "type": "prior_auth:approved",
        "patientId": clinic.patient_id,
        "entityId": "pa-9",
        "data": {
            "id": "pa-9",
            "patientId": clinic.patient_id,
            "payerId": "payer-1",
            "item": "Mohs surgery",
            "status": "approved",
        },
    }
    http = stack.http(service)
    mine = f"{clinic.tenant}.lab-gateway"
    r = http.post("/events", json=event, headers={HEADER: f"{mine}.1"})
    assert r.status_code == 202, r.text
    r = http.post("/events/batch", json={"events": [event, event]}, headers={HEADER: f"{mine}.2"})
    assert r.status_code == 202, r.text
    r = http.post("/events", json=event)
    assert r.status_code == 202, r.text
    origins = [e.get("origin") for e in _events_after(clinic, before)]
    assert origins == [f"{mine}.1", f"{mine}.2", f"{mine}.2", None]


def test_another_callers_connection_is_not_taken_as_origin(stack: Stack, clinic: Clinic) -> None:
    """Naming another user's window (its id is in every envelope it wrote) would keep
    that window quiet about this change: only the caller's own connections count."""
    for other in (f"{clinic.tenant}.dr-1.3f9a0c1d", f"{clinic.tenant}.fd-10.3f9a", "x.fd-1.1"):
        assert "origin" not in _check_in(clinic, {HEADER: other}), other


def test_parse_origin_bounds_and_shape() -> None:
    assert parse_origin("acme.u-17.3f9a") == "acme.u-17.3f9a"
    assert parse_origin("a" * 128) == "a" * 128
    for bad in (None, "", "a" * 129, ".x", "a b", "a\nb", "ü"):
        assert parse_origin(bad) is None
