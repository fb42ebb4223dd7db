"""Request and response bodies (camelCase on the wire)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    model_validator,
)
from pydantic.alias_generators import to_camel

from hub.catalog import (
    AppointmentStatus,
    BiopsyStatus,
    ClaimStatus,
    EncounterStatus,
    PriorAuthStatus,
)


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


class Patch(Body):
    """A partial update: only the fields sent change, at least one must be sent, and
    ``version`` (optional) refuses the edit with 409 if the record changed meanwhile.
    Fields listed in ``not_null`` may be left out but not set to null."""

    not_null: ClassVar[tuple[str, ...]] = ()
    version: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _check(self) -> Patch:
        sent = self.model_fields_set - {"version"}
        if not sent:
            raise ValueError("nothing to change: send at least one field")
        nulls = [f for f in self.not_null if f in sent and getattr(self, f) is None]
        if nulls:
            raise ValueError(f"{', '.join(to_camel(f) for f in nulls)} cannot be null")
        return self

    def changes(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True, exclude={"version"})


class PatientUpdate(Patch):
    not_null = ("first_name", "last_name", "date_of_birth")
    first_name: str | None = Field(default=None, min_length=1, max_length=100)
    last_name: str | None = Field(default=None, min_length=1, max_length=100)
    date_of_birth: date | None = None
    sex: Literal["female", "male", "other", "unknown"] | None = None
    phone: str | None = Field(default=None, max_length=32)
    email: str | None = Field(default=None, max_length=254)


class InsuranceVerify(Body):
    payer_id: str = Id
    member_id: str = Field(min_length=1, max_length=64)
    eligible: bool = True


class PatientOut(Out):
    id: str
    first_name: str
    last_name: str
    date_of_birth: date
    sex: str | None
    phone: str | None
    email: str | None
    balance_cents: int
    insurance_payer_id: str | None
    insurance_member_id: str | None
    insurance_eligible: bool | None
    insurance_verified_at: datetime | None
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


# A batch commits in one transaction; bounded so one request cannot hold the writer
# (and every other publisher behind it) for long.
MAX_BATCH_EVENTS = 500


class PublishBatch(Body):
    events: list[PublishEvent] = Field(min_length=1, max_length=MAX_BATCH_EVENTS)


class PublishedBatch(Out):
    events: list[PublishedEvent]


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


OptionalRef = Annotated[str, Id] | None
Cents = Field(ge=1, le=100_000_000)  # at most a million dollars


class EncounterCreate(Body):
    patient_id: str = Id
    provider_id: str = Id
    appointment_id: OptionalRef = None
    chief_complaint: str | None = Field(default=None, max_length=1000)


class EncounterPatch(Patch):
    chief_complaint: str | None = Field(default=None, max_length=1000)
    assessment: str | None = Field(default=None, max_length=10000)
    plan: str | None = Field(default=None, max_length=10000)


class EncounterOut(Out):
    id: str
    patient_id: str
    provider_id: str
    appointment_id: str | None
    status: EncounterStatus
    chief_complaint: str | None
    assessment: str | None
    plan: str | None
    completed_at: datetime | None
    signed_at: datetime | None
    signed_by: str | None
    created_at: datetime
    updated_at: datetime
    version: int


class BiopsyCreate(Body):
    patient_id: str = Id
    ordering_provider_id: str = Id
    site: str = Field(min_length=1, max_length=200)
    encounter_id: OptionalRef = None


class BiopsyPatch(Patch):
    not_null = ("site", "status")
    site: str | None = Field(default=None, min_length=1, max_length=200)
    status: Literal["collected", "sent", "cancelled"] | None = None


class BiopsyResult(Body):
    diagnosis: str = Field(min_length=1, max_length=1000)
    concerning: bool | None = None


class BiopsyOut(Out):
    id: str
    patient_id: str
    ordering_provider_id: str
    encounter_id: str | None
    site: str
    status: BiopsyStatus
    diagnosis: str | None
    concerning: bool | None
    critical: bool
    resulted_at: datetime | None
    reviewed_at: datetime | None
    reviewed_by: str | None
    created_at: datetime
    updated_at: datetime
    version: int


class ClaimCreate(Body):
    patient_id: str = Id
    payer_id: str = Id
    amount_cents: int = Cents
    encounter_id: OptionalRef = None


class ClaimPatch(Patch):
    not_null = ("payer_id", "amount_cents")
    payer_id: OptionalRef = None
    amount_cents: int | None = Field(default=None, ge=1, le=100_000_000)
    encounter_id: OptionalRef = None


class ClaimStatusChange(Body):
    status: Literal["accepted", "pending", "denied", "paid", "adjusted", "void"]
    reason: str | None = Field(default=None, max_length=500)
    paid_amount_cents: int | None = Field(default=None, ge=0, le=100_000_000)
    patient_responsibility_cents: int | None = Field(default=None, ge=0, le=100_000_000)


class ClaimOut(Out):
    id: str
    patient_id: str
    payer_id: str
    encounter_id: str | None
    amount_cents: int
    status: ClaimStatus
    reason: str | None
    paid_amount_cents: int | None
    patient_responsibility_cents: int
    submitted_at: datetime | None
    created_at: datetime
    updated_at: datetime
    version: int


class PaymentCreate(Body):
    patient_id: str = Id
    amount_cents: int = Cents
    method: Literal["cash", "card", "check", "eft", "other"]
    claim_id: OptionalRef = None
    reference: str | None = Field(default=None, max_length=100)


class PaymentOut(Out):
    id: str
    patient_id: str
    amount_cents: int
    method: str
    claim_id: str | None
    reference: str | None
    received_by: str
    created_at: datetime


class PaymentReceipt(PaymentOut):
    balance_cents: int


class PriorAuthCreate(Body):
    patient_id: str = Id
    payer_id: str = Id
    item: str = Field(min_length=1, max_length=200)
    requesting_provider_id: OptionalRef = None
    reason: str | None = Field(default=None, max_length=500)


class PriorAuthStatusChange(Body):
    status: Literal["pending", "approved", "denied", "cancelled"]
    reason: str | None = Field(default=None, max_length=500)


class PriorAuthOut(Out):
    id: str
    patient_id: str
    payer_id: str
    item: str
    status: PriorAuthStatus
    reason: str | None
    requested_by: str | None
    created_at: datetime
    updated_at: datetime
    version: int


class NotificationOut(Out):
    id: str
    tenant: str
    user_id: str
    kind: Literal["critical_result", "claim_denied", "prior_auth_denied", "escalation"]
    severity: Literal["critical", "alert"]
    title: str
    body: str
    event_id: str
    event_type: str
    patient_id: str
    entity: str
    entity_id: str
    escalation_of: str | None
    attempt: int
    escalated: bool
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    created_at: datetime
    updated_at: datetime
    version: int


class NotificationPage(Out):
    notifications: list[NotificationOut]


class NotificationSeen(Body):
    """The client received and displayed a notification (times by its clock)."""

    displayed_at: AwareDatetime
    received_at: AwareDatetime | None = None


class NotificationReceipt(Out):
    id: str
    delivered_at: datetime | None
    displayed_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None


StaffId = Annotated[str, Id]
RoleName = Literal["front_desk", "provider", "billing", "admin"]


class EscalateTo(Body):
    roles: list[RoleName] = Field(default_factory=list, max_length=4)
    staff_ids: list[StaffId] = Field(default_factory=list, max_length=50)


class AlertRuleIn(Body):
    """Who hears one alerting event type, and how an unacknowledged one escalates."""

    natural_recipient: bool = True
    covering_provider_id: StaffId | None = None
    care_team: list[StaffId] = Field(default_factory=list, max_length=50)
    roles: list[RoleName] = Field(default_factory=list, max_length=4)
    on_call: list[StaffId] = Field(default_factory=list, max_length=50)
    resend_seconds: float | None = Field(default=None, gt=0, le=86400)
    max_resends: int = Field(default=0, ge=0, le=20)
    escalate_after_seconds: float | None = Field(default=None, gt=0, le=7 * 86400)
    escalate_to: EscalateTo = Field(default_factory=EscalateTo)


class AlertRuleOut(Out):
    kind: str
    configured: bool
    natural_recipient: bool
    covering_provider_id: str | None
    care_team: list[str]
    roles: list[str]
    on_call: list[str]
    resend_seconds: float | None
    max_resends: int
    escalate_after_seconds: float | None
    escalate_to: dict[str, list[str]]
    updated_by: str | None
    updated_at: datetime | None
    version: int


class AlertRulePage(Out):
    rules: list[AlertRuleOut]
