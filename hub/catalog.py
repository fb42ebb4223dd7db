"""The typed event catalog: every event type, its topic parts and its payload schema.

The payload models are what the api validates before it writes an event, and what
``GET /events/catalog`` publishes as JSON Schema.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, Field, ValidationError

from hub.errors import EventValidationError, UnknownEventTypeError
from hub.models import CamelModel

OpaqueId = str  # validated by the envelope and topic builders

AppointmentStatus = Literal[
    "scheduled", "confirmed", "checked_in", "in_room", "completed", "cancelled", "no_show"
]
EncounterStatus = Literal["open", "completed", "signed"]
BiopsyStatus = Literal["ordered", "collected", "sent", "resulted", "reviewed", "cancelled"]
ClaimStatus = Literal[
    "draft", "submitted", "accepted", "pending", "denied", "paid", "adjusted", "void"
]
PriorAuthStatus = Literal["requested", "pending", "approved", "denied", "cancelled"]

_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]*$"
_ID = Field(min_length=1, max_length=64, pattern=_ID_PATTERN)
OptionalId = Annotated[str, Field(min_length=1, max_length=64, pattern=_ID_PATTERN)] | None
# Aware datetimes only, published in UTC ("...Z") whatever offset they came with.
UtcDatetime = Annotated[AwareDatetime, AfterValidator(lambda d: d.astimezone(UTC))]


class AppointmentData(CamelModel):
    id: str = _ID
    patient_id: str = _ID
    patient_name: str = Field(min_length=1, max_length=200)
    provider_id: str = _ID
    provider_name: str = Field(min_length=1, max_length=200)
    location_id: str = _ID
    location_name: str | None = Field(default=None, max_length=200)
    scheduled_start: UtcDatetime
    scheduled_end: UtcDatetime
    status: AppointmentStatus
    reason: str | None = Field(default=None, max_length=500)
    previous_status: AppointmentStatus | None = None
    previous_scheduled_start: UtcDatetime | None = None
    previous_scheduled_end: UtcDatetime | None = None
    cancel_reason: str | None = Field(default=None, max_length=500)
    # Set on a check-in made at a kiosk (the event's actor is the kiosk's id).
    kiosk_name: str | None = Field(default=None, max_length=100)


class PatientData(CamelModel):
    id: str = _ID
    first_name: str = Field(min_length=1, max_length=100)
    last_name: str = Field(min_length=1, max_length=100)
    date_of_birth: date
    sex: str | None = Field(default=None, max_length=16)
    phone: str | None = Field(default=None, max_length=32)
    email: str | None = Field(default=None, max_length=254)
    changed_fields: list[str] = Field(default_factory=list)


class InsuranceVerifiedData(CamelModel):
    patient_id: str = _ID
    payer_id: str = _ID
    member_id: str = Field(min_length=1, max_length=64)
    eligible: bool = True
    verified_at: UtcDatetime


class BalanceChangedData(CamelModel):
    patient_id: str = _ID
    balance_cents: int
    previous_balance_cents: int
    reason: str = Field(min_length=1, max_length=200)


class EncounterData(CamelModel):
    id: str = _ID
    patient_id: str = _ID
    provider_id: str = _ID
    appointment_id: OptionalId = None
    status: EncounterStatus
    chief_complaint: str | None = Field(default=None, max_length=1000)
    assessment: str | None = Field(default=None, max_length=10000)
    plan: str | None = Field(default=None, max_length=10000)
    changed_fields: list[str] = Field(default_factory=list)
    completed_at: UtcDatetime | None = None
    signed_at: UtcDatetime | None = None
    signed_by: OptionalId = None


class BiopsyData(CamelModel):
    id: str = _ID
    patient_id: str = _ID
    ordering_provider_id: str = _ID
    encounter_id: OptionalId = None
    site: str = Field(min_length=1, max_length=200)
    status: BiopsyStatus
    previous_status: BiopsyStatus | None = None
    diagnosis: str | None = Field(default=None, max_length=1000)
    concerning: bool | None = None
    critical: bool = False
    resulted_at: UtcDatetime | None = None
    reviewed_at: UtcDatetime | None = None
    reviewed_by: OptionalId = None


class ClaimData(CamelModel):
    id: str = _ID
    patient_id: str = _ID
    payer_id: str = _ID
    encounter_id: OptionalId = None
    amount_cents: int = Field(ge=0)
    status: ClaimStatus
    previous_status: ClaimStatus | None = None
    reason: str | None = Field(default=None, max_length=500)
    paid_amount_cents: int | None = Field(default=None, ge=0)
    # What the patient owes on this claim (after the payer paid or it was adjusted).
    patient_responsibility_cents: int = Field(default=0, ge=0)
    submitted_at: UtcDatetime | None = None


class PaymentData(CamelModel):
    id: str = _ID
    patient_id: str = _ID
    amount_cents: int = Field(gt=0)
    method: str = Field(min_length=1, max_length=32)
    claim_id: OptionalId = None
    balance_cents: int


class BiopsyEscalatedData(CamelModel):
    """A critical result stayed unacknowledged: the tenant's admins were alerted."""

    id: str = _ID  # the biopsy
    patient_id: str = _ID
    ordering_provider_id: str = _ID
    notification_id: str = _ID  # the unacknowledged alert
    escalated_to: list[str]  # empty only when the tenant has nobody else to tell
    unacknowledged_since: UtcDatetime
    attempts: int = Field(ge=1)


class PriorAuthData(CamelModel):
    id: str = _ID
    patient_id: str = _ID
    payer_id: str = _ID
    item: str = Field(min_length=1, max_length=200)
    status: PriorAuthStatus
    previous_status: PriorAuthStatus | None = None
    reason: str | None = Field(default=None, max_length=500)
    requested_by: OptionalId = None


Severity = Literal["info", "alert", "critical"]


@dataclass(frozen=True, slots=True)
class EventType:
    """One entry of the catalog."""

    name: str
    payload: type[CamelModel]
    description: str
    severity: Severity = "info"

    @property
    def entity(self) -> str:
        return self.name.split(":", 1)[0]

    @property
    def action(self) -> str:
        return self.name.split(":", 1)[1]

    def validate(self, data: Any) -> CamelModel:
        """Validate a payload (a dict from JSON or a model); raise EventValidationError."""
        try:
            if isinstance(data, self.payload):
                return data
            if isinstance(data, CamelModel):
                data = data.model_dump(mode="json")
            return self.payload.model_validate(data)
        except ValidationError as exc:
            errors = [
                {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]}
                for e in exc.errors(include_url=False, include_input=False)
            ]
            raise EventValidationError(self.name, errors) from None

    def json_schema(self) -> dict[str, Any]:
        return self.payload.model_json_schema(by_alias=True)


def _types() -> list[EventType]:
    a, p, e, b, c = AppointmentData, PatientData, EncounterData, BiopsyData, ClaimData
    return [
        EventType("appointment:created", a, "An appointment was booked."),
        EventType("appointment:updated", a, "Time, provider, location or status changed."),
        EventType("appointment:cancelled", a, "The appointment was cancelled."),
        EventType("appointment:checkedin", a, "The patient checked in."),
        EventType("patient:updated", p, "Demographics changed."),
        EventType("patient:insurance_verified", InsuranceVerifiedData, "Coverage verified."),
        EventType("patient:balance_changed", BalanceChangedData, "What the patient owes changed."),
        EventType("encounter:created", e, "An encounter was opened."),
        EventType("encounter:updated", e, "The encounter's documentation changed."),
        EventType("encounter:completed", e, "The encounter was completed."),
        EventType("encounter:signed", e, "The provider signed the encounter."),
        EventType("biopsy:created", b, "A biopsy was ordered."),
        EventType("biopsy:updated", b, "The biopsy's status or details changed."),
        EventType(
            "biopsy:result_received", b, "The pathology result arrived.", severity="critical"
        ),
        EventType("biopsy:reviewed", b, "The ordering provider reviewed the result."),
        EventType(
            "biopsy:escalated",
            BiopsyEscalatedData,
            "A critical result stayed unacknowledged and was escalated to the admins.",
            severity="critical",
        ),
        EventType("claim:created", c, "A claim was created."),
        EventType("claim:updated", c, "The claim's details changed."),
        EventType("claim:status_changed", c, "The claim's status changed."),
        EventType("claim:submitted", c, "The claim was submitted to the payer."),
        EventType("claim:denied", c, "The payer denied the claim.", severity="alert"),
        EventType("claim:paid", c, "The payer paid the claim."),
        EventType("payment:received", PaymentData, "A payment was posted."),
        EventType("prior_auth:status_changed", PriorAuthData, "The request's status changed."),
        EventType("prior_auth:approved", PriorAuthData, "The payer approved the request."),
        EventType(
            "prior_auth:denied", PriorAuthData, "The payer denied the request.", severity="alert"
        ),
    ]


CATALOG: dict[str, EventType] = {t.name: t for t in _types()}

# The event types a tenant's alert rules route to people (api.domain.alert_routing);
# the outbox indexes them so the alert router finds them without scanning.
ALERTING_TYPES: tuple[str, ...] = ("biopsy:result_received", "claim:denied", "prior_auth:denied")


def get_event_type(name: str) -> EventType:
    try:
        return CATALOG[name]
    except KeyError:
        raise UnknownEventTypeError(name) from None


def catalog_json_schema() -> list[dict[str, Any]]:
    """The catalog as published by ``GET /events/catalog``."""
    return [
        {
            "type": t.name,
            "entity": t.entity,
            "action": t.action,
            "severity": t.severity,
            "description": t.description,
            "schema": t.json_schema(),
        }
        for t in CATALOG.values()
    ]
