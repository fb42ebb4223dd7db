"""Demo data: a directory, patients and today's appointments (which emit events)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.domain import appointments, billing, biopsies, encounters, prior_auths
from api.models import Location, Patient, Staff
from api.settings import Settings
from hub.db import make_engine, make_sessionmaker, utcnow
from hub.ids import new_id
from hub.topics import validate_tenant

STAFF = [
    ("dr-okafor", "Dr. Ada Okafor", "Dermatologist", ["provider"], True),
    ("dr-lindqvist", "Dr. Nils Lindqvist", "Mohs surgeon", ["provider"], True),
    ("fd-garcia", "Maria Garcia", "Front desk", ["front_desk"], False),
    ("bl-chen", "Wei Chen", "Billing", ["billing"], False),
    ("ad-patel", "Priya Patel", "Practice manager", ["admin"], False),
]
LOCATIONS = [("loc-main", "Main clinic"), ("loc-north", "North satellite")]
PATIENTS = [
    ("Grace", "Hopper", date(1956, 12, 9)),
    ("Alan", "Turing", date(1962, 6, 23)),
    ("Ada", "Lovelace", date(1985, 12, 10)),
    ("Katherine", "Johnson", date(1948, 8, 26)),
    ("Edsger", "Dijkstra", date(1970, 5, 11)),
    ("Barbara", "Liskov", date(1979, 11, 7)),
    ("Donald", "Knuth", date(1968, 1, 10)),
    ("Frances", "Allen", date(1982, 8, 4)),
]


def seed(settings: Settings, tenant: str) -> str:
    validate_tenant(tenant)
    engine = make_engine(settings.resolved_database_url)
    sessions = make_sessionmaker(engine)
    clinic = appointments.Clinic(settings.clinic_timezone)
    try:
        with sessions() as db:
            if db.scalar(select(Staff.id).where(Staff.tenant == tenant).limit(1)) is not None:
                return f"tenant {tenant} already has data; nothing seeded"
            for sid, name, title, roles, is_provider in STAFF:
                db.add(
                    Staff(
                        tenant=tenant,
                        id=sid,
                        name=name,
                        title=title,
                        roles=roles,
                        is_provider=is_provider,
                        active=True,
                    )
                )
            for lid, name in LOCATIONS:
                db.add(Location(tenant=tenant, id=lid, name=name))
            now = utcnow()
            patient_ids = []
            for first, last, dob in PATIENTS:
                pid = new_id("p")
                patient_ids.append(pid)
                db.add(
                    Patient(
                        tenant=tenant,
                        id=pid,
                        first_name=first,
                        last_name=last,
                        date_of_birth=dob,
                        balance_cents=0,
                        created_at=now,
                        updated_at=now,
                        version=1,
                    )
                )
            db.commit()
        start_of_day = datetime.combine(clinic.today(), time(8, 0), clinic.tz)
        for i, pid in enumerate(patient_ids):
            start = start_of_day + timedelta(minutes=40 * i)
            with sessions() as db:
                appointments.create(
                    db,
                    clinic,
                    tenant=tenant,
                    actor="seed",
                    patient_id=pid,
                    provider_id=STAFF[i % 2][0],
                    location_id=LOCATIONS[i % 2][0],
                    start=start,
                    end=start + timedelta(minutes=30),
                    reason="Skin check",
                )
        with sessions() as db:
            _clinical_and_billing(db, tenant, patient_ids)
    finally:
        engine.dispose()
    return (
        f"seeded tenant {tenant}: {len(STAFF)} staff, {len(LOCATIONS)} locations, "
        f"{len(PATIENTS)} patients, {len(PATIENTS)} appointments today, and an "
        "encounter, biopsies, claims, a payment and a prior authorization"
    )


def _clinical_and_billing(db: Session, tenant: str, patient_ids: list[str]) -> None:
    """Something on every board: an open encounter, biopsies waiting for a result, a
    submitted claim, a patient who owes a balance, a pending prior authorization."""
    first, second, third = patient_ids[:3]
    actor, provider = "seed", STAFF[0][0]
    encounter = encounters.open_encounter(
        db,
        tenant=tenant,
        actor=actor,
        patient_id=first,
        provider_id=provider,
        appointment_id=None,
        chief_complaint="Changing mole, left upper back",
    )
    for patient, site in ((first, "left upper back"), (third, "right forearm")):
        bx = biopsies.order(
            db,
            tenant=tenant,
            actor=actor,
            patient_id=patient,
            ordering_provider_id=provider,
            site=site,
            encounter_id=encounter.id if patient == first else None,
        )
        biopsies.update(
            db,
            tenant=tenant,
            actor=actor,
            biopsy_id=bx.id,
            site=None,
            status="sent",
            expected_version=None,
        )
    claim = billing.create_claim(
        db,
        tenant=tenant,
        actor=actor,
        patient_id=first,
        payer_id="aetna",
        amount_cents=18500,
        encounter_id=encounter.id,
    )
    billing.submit_claim(db, tenant=tenant, actor=actor, claim_id=claim.id)
    paid = billing.create_claim(
        db,
        tenant=tenant,
        actor=actor,
        patient_id=second,
        payer_id="bcbs",
        amount_cents=24000,
        encounter_id=None,
    )
    billing.submit_claim(db, tenant=tenant, actor=actor, claim_id=paid.id)
    billing.change_claim_status(
        db,
        tenant=tenant,
        actor=actor,
        claim_id=paid.id,
        status="paid",
        reason=None,
        paid_amount_cents=19000,
        patient_responsibility_cents=None,
    )
    billing.post_payment(
        db,
        tenant=tenant,
        actor=actor,
        patient_id=second,
        amount_cents=2000,
        method="card",
        claim_id=paid.id,
        reference=None,
    )
    prior_auths.request(
        db,
        tenant=tenant,
        actor=actor,
        actor_is_provider=False,
        patient_id=third,
        payer_id="aetna",
        item="Mohs surgery, right forearm",
        requesting_provider_id=STAFF[1][0],
        reason=None,
    )
