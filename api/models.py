"""Domain tables. Every row carries its tenant, and references between tables include
the tenant in the foreign key, so the database itself refuses a cross-tenant link."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
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
