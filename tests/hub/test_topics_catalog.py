"""Pure logic: topic building and the catalog's validation."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hub.catalog import CATALOG, get_event_type
from hub.envelope import iso_utc
from hub.errors import EventValidationError, UnknownEventTypeError
from hub.topics import Topic, event_topic, meta_seq_topic, notification_topic, snapshot_topic

CONTRACT_TYPES = {
    "appointment": ["created", "updated", "cancelled", "checkedin"],
    "patient": ["updated", "insurance_verified", "balance_changed"],
    "encounter": ["created", "updated", "completed", "signed"],
    "biopsy": ["created", "updated", "result_received", "reviewed"],
    "claim": ["created", "updated", "status_changed", "submitted", "denied", "paid"],
    "payment": ["received"],
    "prior_auth": ["status_changed", "approved", "denied"],
}


# Extensions of the contract's catalog (docs/DECISIONS.md §33).
EXTENSIONS = {"biopsy:escalated"}


def test_catalog_has_the_contracts_types_and_the_documented_extensions() -> None:
    expected = {f"{e}:{a}" for e, actions in CONTRACT_TYPES.items() for a in actions}
    assert set(CATALOG) == expected | EXTENSIONS


def test_severities() -> None:
    assert get_event_type("biopsy:result_received").severity == "critical"
    assert get_event_type("claim:denied").severity == "alert"
    assert get_event_type("prior_auth:denied").severity == "alert"
    assert get_event_type("appointment:created").severity == "info"
    assert get_event_type("biopsy:escalated").severity == "critical"


def test_topics_follow_the_contract() -> None:
    assert (
        event_topic("acme", "p-42", "prior_auth", "pa-1", "denied").value
        == "tenants/acme/patients/p-42/prior_auth/pa-1/denied"
    )
    assert (
        snapshot_topic("acme", "p-42", "appointment", "a-9").value
        == "tenants/acme/patients/p-42/appointment/a-9"
    )
    assert meta_seq_topic("acme").value == "tenants/acme/meta/seq"
    assert (
        notification_topic("acme", "u-17", "n-1").value
        == "tenants/acme/users/u-17/notifications/n-1"
    )


@pytest.mark.parametrize(
    "patient", ["p/1", "+", "#", "p-1/#", "", "a" * 65, "Jane Doe", "p\x00", "ümlaut"]
)
def test_ids_that_would_change_a_topics_shape_are_refused(patient: str) -> None:
    with pytest.raises(ValueError, match="invalid"):
        event_topic("acme", patient, "appointment", "a-1", "created")


@pytest.mark.parametrize("tenant", ["ACME", "a/b", "+", "#", "", "a" * 41, "a.b"])
def test_bad_tenants_are_refused(tenant: str) -> None:
    with pytest.raises(ValueError, match="invalid"):
        meta_seq_topic(tenant)


def test_topic_type_refuses_wildcards() -> None:
    with pytest.raises(ValueError, match="wildcard"):
        Topic("tenants/acme/patients/+/x")


def test_payload_validation() -> None:
    appt = get_event_type("appointment:created")
    good = {
        "id": "a-1",
        "patientId": "p-1",
        "patientName": "Ada Lovelace",
        "providerId": "dr-1",
        "providerName": "Dr. One",
        "locationId": "loc-1",
        "scheduledStart": "2026-11-26T09:00:00Z",
        "scheduledEnd": "2026-11-26T09:30:00Z",
        "status": "scheduled",
    }
    assert appt.validate(good).model_dump(by_alias=True)["patientName"] == "Ada Lovelace"
    with pytest.raises(EventValidationError) as info:
        appt.validate({**good, "status": "teleported"})
    assert info.value.errors[0]["loc"] == ["status"]
    with pytest.raises(EventValidationError):
        appt.validate({**good, "unexpected": 1})
    with pytest.raises(EventValidationError):
        get_event_type("payment:received").validate(
            {"id": "x", "patientId": "p", "amountCents": -5}
        )
    with pytest.raises(UnknownEventTypeError):
        get_event_type("appointment:teleported")


def test_every_type_publishes_a_json_schema() -> None:
    for event_type in CATALOG.values():
        schema = event_type.json_schema()
        assert schema["type"] == "object"
        assert schema["additionalProperties"] is False
        # camelCase on the wire
        assert all("_" not in name for name in schema["properties"])


def test_iso_utc_has_milliseconds_and_z() -> None:
    assert (
        iso_utc(datetime(2026, 11, 26, 9, 14, 3, 512000, tzinfo=UTC)) == "2026-11-26T09:14:03.512Z"
    )
    with pytest.raises(ValueError, match="naive"):
        iso_utc(datetime(2026, 11, 26))
