"""Domain tables. Every row carries its tenant, and references between tables include
the tenant in the foreign key, so the database itself refuses a cross-tenant link."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    Float,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base, UTCDateTime


class Staff(Base):
    """The provider and staff directory. A staff member's id is their user id (the
    token's ``sub``), so "the encounter's provider" is a comparison with ``sub``."""

    __tablename__ = "staff"

    tenant: Mapped[str] = mapped_column(String(40), primary_key=True)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    title: Mapped[str | None] = mapped_column(String(100))
    roles: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    is_provider: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)


class Location(Base):
    __tablename__ = "locations"

    tenant: Mapped[str] = mapped_column(String(40), primary_key=True)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)


class Patient(Base):
    __tablename__ = "patients"

    tenant: Mapped[str] = mapped_column(String(40), primary_key=True)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    first_name: Mapped[str] = mapped_column(String(100), nullable=False)
    last_name: Mapped[str] = mapped_column(String(100), nullable=False)
    date_of_birth: Mapped[date] = mapped_column(Date, nullable=False)
    sex: Mapped[str | None] = mapped_column(String(16))
    phone: Mapped[str | None] = mapped_column(String(32))
    email: Mapped[str | None] = mapped_column(String(254))
    balance_cents: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    insurance_payer_id: Mapped[str | None] = mapped_column(String(64))
    insurance_member_id: Mapped[str | None] = mapped_column(String(64))
    insurance_eligible: Mapped[bool | None] = mapped_column(Boolean)
    insurance_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}"


class Appointment(Base):
    __tablename__ = "appointments"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant", "patient_id"], ["patients.tenant", "patients.id"], name="fk_appt_patient"
        ),
        ForeignKeyConstraint(
            ["tenant", "provider_id"], ["staff.tenant", "staff.id"], name="fk_appt_provider"
        ),
        ForeignKeyConstraint(
            ["tenant", "location_id"],
            ["locations.tenant", "locations.id"],
            name="fk_appt_location",
        ),
        Index("ix_appointments_day", "tenant", "scheduled_start"),
        Index("ix_appointments_patient", "tenant", "patient_id"),
    )

    tenant: Mapped[str] = mapped_column(String(40), primary_key=True)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    patient_id: Mapped[str] = mapped_column(String(64), nullable=False)
    provider_id: Mapped[str] = mapped_column(String(64), nullable=False)
    location_id: Mapped[str] = mapped_column(String(64), nullable=False)
    scheduled_start: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    scheduled_end: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    reason: Mapped[str | None] = mapped_column(String(500))
    cancel_reason: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)


def _fk(column: str, table: str, name: str) -> ForeignKeyConstraint:
    """A reference inside one tenant: (tenant, column) -> (table.tenant, table.id)."""
    return ForeignKeyConstraint(["tenant", column], [f"{table}.tenant", f"{table}.id"], name=name)


class Encounter(Base):
    __tablename__ = "encounters"
    __table_args__ = (
        _fk("patient_id", "patients", "fk_enc_patient"),
        _fk("provider_id", "staff", "fk_enc_provider"),
        _fk("appointment_id", "appointments", "fk_enc_appointment"),
        Index("ix_encounters_patient", "tenant", "patient_id"),
    )

    tenant: Mapped[str] = mapped_column(String(40), primary_key=True)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    patient_id: Mapped[str] = mapped_column(String(64), nullable=False)
    provider_id: Mapped[str] = mapped_column(String(64), nullable=False)
    appointment_id: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    chief_complaint: Mapped[str | None] = mapped_column(String(1000))
    assessment: Mapped[str | None] = mapped_column(Text)
    plan: Mapped[str | None] = mapped_column(Text)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    signed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    signed_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)


class Biopsy(Base):
    __tablename__ = "biopsies"
    __table_args__ = (
        _fk("patient_id", "patients", "fk_bx_patient"),
        _fk("ordering_provider_id", "staff", "fk_bx_provider"),
        _fk("encounter_id", "encounters", "fk_bx_encounter"),
        Index("ix_biopsies_patient", "tenant", "patient_id"),
        Index("ix_biopsies_status", "tenant", "status"),
    )

    tenant: Mapped[str] = mapped_column(String(40), primary_key=True)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    patient_id: Mapped[str] = mapped_column(String(64), nullable=False)
    ordering_provider_id: Mapped[str] = mapped_column(String(64), nullable=False)
    encounter_id: Mapped[str | None] = mapped_column(String(64))
    site: Mapped[str] = mapped_column(String(200), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    diagnosis: Mapped[str | None] = mapped_column(String(1000))
    concerning: Mapped[bool | None] = mapped_column(Boolean)
    critical: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    resulted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reviewed_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)


class Claim(Base):
    __tablename__ = "claims"
    __table_args__ = (
        _fk("patient_id", "patients", "fk_claim_patient"),
        _fk("encounter_id", "encounters", "fk_claim_encounter"),
        Index("ix_claims_patient", "tenant", "patient_id"),
        Index("ix_claims_status", "tenant", "status"),
    )

    tenant: Mapped[str] = mapped_column(String(40), primary_key=True)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    patient_id: Mapped[str] = mapped_column(String(64), nullable=False)
    payer_id: Mapped[str] = mapped_column(String(64), nullable=False)
    encounter_id: Mapped[str | None] = mapped_column(String(64))
    amount_cents: Mapped[int] = mapped_column(BigInteger, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    reason: Mapped[str | None] = mapped_column(String(500))
    paid_amount_cents: Mapped[int | None] = mapped_column(BigInteger)
    patient_responsibility_cents: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)


class Payment(Base):
    __tablename__ = "payments"
    __table_args__ = (
        _fk("patient_id", "patients", "fk_payment_patient"),
        _fk("claim_id", "claims", "fk_payment_claim"),
        Index("ix_payments_patient", "tenant", "patient_id"),
    )

    tenant: Mapped[str] = mapped_column(String(40), primary_key=True)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    patient_id: Mapped[str] = mapped_column(String(64), nullable=False)
    amount_cents: Mapped[int] = mapped_column(BigInteger, nullable=False)
    method: Mapped[str] = mapped_column(String(32), nullable=False)
    claim_id: Mapped[str | None] = mapped_column(String(64))
    reference: Mapped[str | None] = mapped_column(String(100))
    received_by: Mapped[str] = mapped_column(String(128), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class PriorAuth(Base):
    __tablename__ = "prior_auths"
    __table_args__ = (
        _fk("patient_id", "patients", "fk_pa_patient"),
        _fk("requested_by", "staff", "fk_pa_requester"),
        Index("ix_prior_auths_patient", "tenant", "patient_id"),
        Index("ix_prior_auths_status", "tenant", "status"),
    )

    tenant: Mapped[str] = mapped_column(String(40), primary_key=True)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    patient_id: Mapped[str] = mapped_column(String(64), nullable=False)
    payer_id: Mapped[str] = mapped_column(String(64), nullable=False)
    item: Mapped[str] = mapped_column(String(200), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    reason: Mapped[str | None] = mapped_column(String(500))
    requested_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)


class Notification(Base):
    """A notification for one user: stored, published to the user's topic, listed and
    acknowledged through the api, so nothing depends on a browser being online.

    ``next_action_at`` drives the escalation worker: when it passes, an
    unacknowledged critical alert is re-sent or escalated (docs/notifications.md)."""

    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_user", "tenant", "user_id", "acknowledged_at"),
        Index("ix_notifications_entity", "tenant", "entity_id"),
        Index("ix_notifications_due", "next_action_at"),
    )

    tenant: Mapped[str] = mapped_column(String(40), primary_key=True)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64), nullable=False)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    severity: Mapped[str] = mapped_column(String(16), nullable=False)
    title: Mapped[str] = mapped_column(String(200), nullable=False)
    body: Mapped[str] = mapped_column(String(1000), nullable=False)
    event_id: Mapped[str] = mapped_column(String(36), nullable=False)
    event_type: Mapped[str] = mapped_column(String(64), nullable=False)
    patient_id: Mapped[str] = mapped_column(String(64), nullable=False)
    entity: Mapped[str] = mapped_column(String(32), nullable=False)
    entity_id: Mapped[str] = mapped_column(String(64), nullable=False)
    # The alert this one escalates (kind "escalation"), if any.
    escalation_of: Mapped[str | None] = mapped_column(String(64))
    attempt: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    escalated: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    next_action_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    escalate_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    # The schedule this alert was routed with (its tenant's rule at the time); NULL:
    # the configured defaults (HUB_CRITICAL_*).
    resend_seconds: Mapped[float | None] = mapped_column(Float)
    max_resends: Mapped[int | None] = mapped_column(Integer)
    # When the user's client reported it received and displayed the alert.
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    displayed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AlertRule(Base):
    """Who hears one alerting event type in one tenant, and how it escalates
    (docs/notifications.md, "Routing rules"). No row: the built-in default."""

    __tablename__ = "alert_rules"

    tenant: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(64), primary_key=True)
    natural_recipient: Mapped[bool] = mapped_column(Boolean, nullable=False)
    covering_provider_id: Mapped[str | None] = mapped_column(String(64))
    care_team: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    roles: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    on_call: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    resend_seconds: Mapped[float | None] = mapped_column(Float)
    max_resends: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    escalate_after_seconds: Mapped[float | None] = mapped_column(Float)
    escalate_to_roles: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    escalate_to_staff: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    updated_by: Mapped[str] = mapped_column(String(64), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)


class AlertCursor(Base):
    """How far the alert router has read each tenant's events (by seq)."""

    __tablename__ = "alert_cursors"

    tenant: Mapped[str] = mapped_column(String(40), primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)


class AlertRouted(Base):
    """An alerting event its own transaction already routed (a domain route): the alert
    router passes it by, and deletes this row as its cursor passes it."""

    __tablename__ = "alert_routed"

    tenant: Mapped[str] = mapped_column(String(40), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)


class Kiosk(Base):
    """A check-in kiosk of one location (docs/architecture.md, "Kiosks"). The
    enrollment code and the device secret are kept only as SHA-256 digests."""

    __tablename__ = "kiosks"
    __table_args__ = (
        _fk("location_id", "locations", "fk_kiosk_location"),
        Index("ix_kiosks_enrollment", "enrollment_code_hash", unique=True),
        Index("ix_kiosks_secret", "secret_hash", unique=True),
    )

    tenant: Mapped[str] = mapped_column(String(40), primary_key=True)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    location_id: Mapped[str] = mapped_column(String(64), nullable=False)
    created_by: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    # Cleared when the code is used: a code works once.
    enrollment_code_hash: Mapped[str | None] = mapped_column(String(64))
    enrollment_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    enrolled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    secret_hash: Mapped[str | None] = mapped_column(String(64))
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Too many failed check-ins: every request is answered rate_limited until then.
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)


class KioskAnswer(Base):
    """The answer to one kiosk request, keyed by a digest of its correlation data: the
    same correlation data gets the same answer and never checks in twice. Holds the
    outcome and, for a check-in, the appointment id (a repeated ``ok`` is rebuilt from
    it): never the typed name or birth date, nor what the answer showed. Pruned after a
    day."""

    __tablename__ = "kiosk_answers"
    __table_args__ = (
        _fk("kiosk_id", "kiosks", "fk_kiosk_answer_kiosk"),
        Index("ix_kiosk_answers_recent", "tenant", "kiosk_id", "created_at"),
    )

    tenant: Mapped[str] = mapped_column(String(40), primary_key=True)
    kiosk_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    correlation_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    outcome: Mapped[str] = mapped_column(String(24), nullable=False)
    appointment_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class Partner(Base):
    """An integration partner of a tenant (docs/architecture.md, "Partners"): the event
    types it was granted and its secrets, kept as SHA-256 digests. After a rotation the
    previous secret works until ``previous_secret_expires_at``. A removed partner keeps
    its row (the audit names it) and its id is not given out again."""

    __tablename__ = "partners"
    __table_args__ = (
        Index("ix_partners_secret", "secret_hash", unique=True),
        Index("ix_partners_previous_secret", "previous_secret_hash", unique=True),
    )

    tenant: Mapped[str] = mapped_column(String(40), primary_key=True)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    # The normalized grant: catalog types and "entity:*" entries (hub.grants).
    event_types: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    created_by: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    secret_hash: Mapped[str | None] = mapped_column(String(64))
    secret_created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    previous_secret_hash: Mapped[str | None] = mapped_column(String(64))
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
