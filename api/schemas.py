"""Request and response bodies (camelCase on the wire)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic.alias_generators import to_camel

from hub.catalog import AppointmentStatus


def _iso_string(value: object) -> object:
    # Otherwise a number is read as Unix seconds: 20261126 would be a day in 1970.
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 date-time string with a time zone")
    return value


IsoDatetime = Annotated[AwareDatetime, BeforeValidator(_iso_string)]

Id = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


class Body(BaseModel):
    """Requests: unknown fields are refused so a typo never passes silently."""

    model_config = ConfigDict(
        alias_generator=to_camel, validate_by_name=True, validate_by_alias=True, extra="forbid"
    )


class Out(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        serialize_by_alias=True,
        from_attributes=True,
    )


Name = Field(min_length=1, max_length=100)


class PatientCreate(Body):
    first_name: str = Name
    last_name: str = Name
    date_of_birth: date
    sex: Literal["female", "male", "other", "unknown"] | None = None
    phone: str | None = Field(default=None, max_length=32)
    email: str | None = Field(default=None, max_length=254)


class PatientOut(Out):
    id: str
    first_name: str
    last_name: str
    date_of_birth: date
    sex: str | None
    phone: str | None
    email: str | None
    balance_cents: int
    created_at: datetime
    updated_at: datetime
    version: int


class StaffCreate(Body):
    id: str = Id
    name: str = Field(min_length=1, max_length=200)
    title: str | None = Field(default=None, max_length=100)
    roles: list[Literal["front_desk", "provider", "billing", "admin"]] = Field(default_factory=list)
    is_provider: bool = False


class StaffOut(Out):
    id: str
    name: str
    title: str | None
    roles: list[str]
    is_provider: bool
    active: bool


class LocationCreate(Body):
    id: str = Id
    name: str = Field(min_length=1, max_length=200)


class LocationOut(Out):
    id: str
    name: str


class AppointmentCreate(Body):
    patient_id: str = Id
    provider_id: str = Id
    location_id: str = Id
    scheduled_start: IsoDatetime
    scheduled_end: IsoDatetime
    reason: str | None = Field(default=None, max_length=500)


class Reschedule(Body):
    scheduled_start: IsoDatetime
    scheduled_end: IsoDatetime


class StatusChange(Body):
    status: AppointmentStatus
    reason: str | None = Field(default=None, max_length=500)


class AppointmentOut(Out):
    """The appointment as the api answers it: the event data plus bookkeeping."""

    id: str
    patient_id: str
    patient_name: str
    provider_id: str
    provider_name: str
    location_id: str
    location_name: str | None
    scheduled_start: datetime
    scheduled_end: datetime
    status: AppointmentStatus
    reason: str | None
    cancel_reason: str | None
    created_at: datetime
    updated_at: datetime
    version: int


class CredentialsRequest(Body):
    client_id: str | None = Field(default=None, max_length=128)


class CredentialsOut(Out):
    client_id: str
    username: str
    password: str
    expires_at: datetime
    websocket_url: str
    mqtt_url: str
    topic_prefix: str
    latest_seq: int


class PublishEvent(Body):
    type: str = Field(min_length=1, max_length=64)
    patient_id: str = Id
    entity_id: str = Id
    data: dict[str, Any]


class PublishedEvent(Out):
    id: str
    seq: int
    type: str
    topic: str


class EventPage(Out):
    events: list[dict[str, Any]]
    latest_seq: int


def appointment_out(appt: Any, data: Any) -> AppointmentOut:
    fields = data.model_dump(
        exclude={"previous_status", "previous_scheduled_start", "previous_scheduled_end"}
    )
    return AppointmentOut(
        **fields, created_at=appt.created_at, updated_at=appt.updated_at, version=appt.version
    )
