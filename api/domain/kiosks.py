"""Kiosks: registration, enrollment, device secrets, and check-in by name and birth date.

A kiosk holds no schedule and no patient list. It sends a last name and a date of
birth; the hub matches them against today's appointments at the kiosk's location and
answers with the least it can (docs/architecture.md, "Kiosks"). Nothing here logs or
stores what the patient typed: an answer row keeps only its outcome and, for a
check-in, the appointment id; a repeat of an ``ok`` is rebuilt from the appointment.
Answer rows older than a day are pruned (``prune_answers``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.domain.appointments import Clinic, change_status
from api.domain.common import get_row, staff_with_role
from api.domain.notifications import notification_json
from api.errors import Conflict, NotFound
from api.models import Appointment, Kiosk, KioskAnswer, Location, Notification, Patient, Staff
from hub.audit import record_audit
from hub.credentials import BrokerSession
from hub.db import utcnow
from hub.envelope import iso_utc
from hub.ids import new_id
from hub.outbox import enqueue_message
from hub.topics import notification_topic

log = logging.getLogger("api.kiosks")

ENROLLMENT_TTL = timedelta(minutes=15)
# Codes are typed on a touch screen: no 0/O or 1/I/L. 12 symbols of 31: about 59 bits.
_CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
_CODE_LENGTH = 12
MAX_REQUEST_BYTES = 4096
MAX_CORRELATION_BYTES = 128
MAX_EXPIRY_SECONDS = 60
ANSWER_RETENTION = timedelta(days=1)
CHECKIN_STATUSES = frozenset({"scheduled", "confirmed"})
ARRIVED_STATUSES = frozenset({"checked_in", "in_room", "completed"})
# What a guess looks like: no such patient, or a name and birth date shared by several.
# outside_window and already_checked_in found the patient: a real patient who is early
# or asks twice must not lock the lobby's kiosk.
LOCKOUT_FAILURES = frozenset({"no_match", "ambiguous"})
NOTIFICATION_KIND = "kiosk_locked"
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def digest(value: str | bytes) -> str:
    """SHA-256, hex: how codes, secrets and correlation data are kept."""
    raw = value.encode() if isinstance(value, str) else value
    return hashlib.sha256(raw).hexdigest()


def normalize_code(code: str) -> str:
    """Codes are read case-insensitively, with or without the grouping dashes."""
    return "".join(c for c in code.upper() if c.isalnum())


def new_enrollment_code() -> str:
    raw = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(_CODE_LENGTH))
    return "-".join(raw[i : i + 4] for i in range(0, _CODE_LENGTH, 4))


def new_device_secret() -> str:
    # 32 random bytes: a SHA-256 digest of it is as good as a slow hash (nothing to guess).
    return "kds_" + secrets.token_urlsafe(32)


def client_id_for(tenant: str, kiosk_id: str) -> str:
    """One broker client id per kiosk, the same across renewals and restarts."""
    return f"{tenant}.kiosk.{kiosk_id}"


def kiosk_json(k: Kiosk) -> dict[str, Any]:
    return {
        "id": k.id,
        "name": k.name,
        "locationId": k.location_id,
        "createdAt": iso_utc(k.created_at),
        "enrolledAt": iso_utc(k.enrolled_at) if k.enrolled_at else None,
        "enrollmentExpiresAt": (
            iso_utc(k.enrollment_expires_at)
            if k.enrollment_expires_at and k.enrolled_at is None
            else None
        ),
        "lastSeenAt": iso_utc(k.last_seen_at) if k.last_seen_at else None,
        "disabled": k.disabled_at is not None,
    }


# Registration and enrollment ------------------------------------------------------


def register(
    session: Session, *, tenant: str, actor: str, kiosk_id: str, name: str, location_id: str
) -> tuple[Kiosk, str]:
    """A new kiosk and its enrollment code (returned once, kept as a digest)."""
    get_row(session, Location, tenant, location_id, "location")
    if session.get(Kiosk, (tenant, kiosk_id)) is not None:
        raise Conflict(f"kiosk {kiosk_id} already exists")
    code = new_enrollment_code()
    now = utcnow()
    kiosk = Kiosk(
        tenant=tenant,
        id=kiosk_id,
        name=name,
        location_id=location_id,
        created_by=actor,
        created_at=now,
        enrollment_code_hash=digest(normalize_code(code)),
        enrollment_expires_at=now + ENROLLMENT_TTL,
    )
    session.add(kiosk)
    record_audit(
        session,
        tenant=tenant,
        actor=actor,
        actor_kind="user",
        kind="kiosk.registered",
        subject=kiosk_id,
        details={"locationId": location_id},
    )
    session.commit()
    return kiosk, code


def list_kiosks(session: Session, tenant: str) -> list[Kiosk]:
    return list(session.scalars(select(Kiosk).where(Kiosk.tenant == tenant).order_by(Kiosk.id)))


def disable(session: Session, *, tenant: str, kiosk_id: str, actor: str = "hub") -> Kiosk:
    """Disable a kiosk (again is fine); ``actor``, a user id, is named in the audit trail."""
    kiosk = session.get(Kiosk, (tenant, kiosk_id), with_for_update=True, populate_existing=True)
    if kiosk is None:
        raise NotFound(f"kiosk {kiosk_id} not found")
    if kiosk.disabled_at is None:
        kiosk.disabled_at = utcnow()
        record_audit(
            session,
            tenant=tenant,
            actor=actor,
            actor_kind="hub" if actor == "hub" else "user",
            kind="kiosk.disabled",
            subject=kiosk_id,
        )
    # An unused code stops working too.
    kiosk.enrollment_code_hash = None
    session.commit()
    return kiosk


def enroll(session: Session, code: str) -> tuple[Kiosk, str] | None:
    """Exchange an enrollment code for a device secret, once; None for a code that is
    unknown, used or expired."""
    normalized = normalize_code(code)
    if len(normalized) != _CODE_LENGTH:
        return None
    kiosk = session.scalar(
        select(Kiosk).where(Kiosk.enrollment_code_hash == digest(normalized)).with_for_update()
    )
    now = utcnow()
    if (
        kiosk is None
        or kiosk.disabled_at is not None
        or kiosk.enrollment_expires_at is None
        or kiosk.enrollment_expires_at <= now
    ):
        return None
    secret = new_device_secret()
    kiosk.enrollment_code_hash = None
    kiosk.enrollment_expires_at = None
    kiosk.enrolled_at = now
    kiosk.secret_hash = digest(secret)
    # The code is the proof: the kiosk enrolls itself.
    record_audit(
        session,
        tenant=kiosk.tenant,
        actor=kiosk.id,
        actor_kind="kiosk",
        kind="kiosk.enrolled",
        subject=kiosk.id,
    )
    session.commit()
    return kiosk, secret


def authenticate(session: Session, secret: str) -> Kiosk | None:
    """The enabled kiosk this device secret belongs to. Changes nothing: the caller
    records ``lastSeenAt`` (``seen``) once the request is let through."""
    if not secret.startswith("kds_") or len(secret) > 100:
        return None
    wanted = digest(secret)
    kiosk = session.scalar(select(Kiosk).where(Kiosk.secret_hash == wanted))
    # The lookup is by digest; compare again in constant time all the same.
    if kiosk is None or kiosk.secret_hash is None:
        return None
    if not hmac.compare_digest(kiosk.secret_hash, wanted) or kiosk.disabled_at is not None:
        return None
    session.commit()  # end the read; the kiosk's attributes stay loaded
    return kiosk


def seen(session: Session, tenant: str, kiosk_id: str) -> None:
    """``lastSeenAt`` is now."""
    session.execute(
        update(Kiosk)
        .where(Kiosk.tenant == tenant, Kiosk.id == kiosk_id)
        .values(last_seen_at=utcnow())
    )
    session.commit()


def is_disabled(session: Session, tenant: str, kiosk_id: str) -> bool:
    """Read from the database, not the identity map: is the kiosk disabled now?"""
    disabled_at = session.scalar(
        select(Kiosk.disabled_at).where(Kiosk.tenant == tenant, Kiosk.id == kiosk_id)
    )
    session.commit()
    return disabled_at is not None


def forget_ended_session(session: Session, client_id: str) -> None:
    """Delete the ended broker session of a kiosk's client id (expired, so nothing about
    it is still enforced), so that a new one can take the same id."""
    session.execute(
        delete(BrokerSession).where(
            BrokerSession.client_id == client_id, BrokerSession.expires_at <= utcnow()
        )
    )
    session.commit()


# Check-in -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CheckInRequest:
    last_name: str
    date_of_birth: date


@dataclass(frozen=True, slots=True)
class ArrivalWindow:
    early: timedelta
    late: timedelta


@dataclass(frozen=True, slots=True)
class RateLimit:
    max_failures: int
    window: timedelta
    lockout: timedelta


INVALID: dict[str, Any] = {"ok": False, "reason": "invalid"}


def parse_request(payload: bytes) -> CheckInRequest | None:
    """A check-in request, or None when anything about it is malformed."""
    if len(payload) > MAX_REQUEST_BYTES:
        return None
    try:
        body = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(body, dict) or set(body) != {"type", "lastName", "dateOfBirth"}:
        return None
    name, dob = body["lastName"], body["dateOfBirth"]
    if body["type"] != "check_in" or not isinstance(name, str) or not isinstance(dob, str):
        return None
    name = name.strip()
    if not 1 <= len(name) <= 100 or not _DATE_RE.fullmatch(dob):
        return None
    try:
        born = date.fromisoformat(dob)
    except ValueError:
        return None
    return CheckInRequest(name, born)


def fold_name(name: str) -> str:
    """Case and accents ignored: NFKD, combining marks dropped, casefolded, inner
    whitespace collapsed."""
    decomposed = unicodedata.normalize("NFKD", name)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(stripped.casefold().split())


def display_name(patient: Patient) -> str:
    """First name and last initial: enough for the patient to recognise, little else."""
    return f"{patient.first_name} {patient.last_name[:1]}."


def _failure(reason: str) -> dict[str, Any]:
    return {"ok": False, "reason": reason}


def _ok_body(session: Session, appt: Appointment) -> dict[str, Any]:
    """What an ``ok`` shows: the start, the provider, and the patient's display name."""
    patient = get_row(session, Patient, appt.tenant, appt.patient_id, "patient")
    provider = get_row(session, Staff, appt.tenant, appt.provider_id, "provider")
    return {
        "ok": True,
        "appointment": {
            "scheduledStart": iso_utc(appt.scheduled_start),
            "providerName": provider.name,
            "patientDisplayName": display_name(patient),
        },
    }


def prune_answers(session: Session, older_than: timedelta = ANSWER_RETENTION) -> int:
    """Delete answer rows older than ``older_than`` (a repeat arrives within the
    request's expiry, at most a minute; the lock-out looks back minutes)."""
    result = session.execute(
        delete(KioskAnswer).where(KioskAnswer.created_at < utcnow() - older_than)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def _match(
    session: Session,
    clinic: Clinic,
    kiosk: Kiosk,
    request: CheckInRequest,
    window: ArrivalWindow,
    now: datetime,
) -> tuple[dict[str, Any], Appointment | None, Patient | None]:
    start, end = clinic.day_bounds(clinic.day_of(now))
    rows = session.execute(
        select(Appointment, Patient)
        .join(
            Patient,
            (Patient.tenant == Appointment.tenant) & (Patient.id == Appointment.patient_id),
        )
        .where(
            Appointment.tenant == kiosk.tenant,
            Appointment.location_id == kiosk.location_id,
            Appointment.scheduled_start >= start,
            Appointment.scheduled_start < end,
            Appointment.status.in_(CHECKIN_STATUSES | ARRIVED_STATUSES),
            Patient.date_of_birth == request.date_of_birth,
        )
        .order_by(Appointment.scheduled_start, Appointment.id)
    ).all()
    wanted = fold_name(request.last_name)
    found = [(a, p) for a, p in rows if fold_name(p.last_name) == wanted]
    if not found:
        return _failure("no_match"), None, None
    if len({p.id for _, p in found}) > 1:
        return _failure("ambiguous"), None, None
    in_window = [
        (a, p)
        for a, p in found
        if a.scheduled_start - window.early <= now <= a.scheduled_start + window.late
    ]
    due = [(a, p) for a, p in in_window if a.status in CHECKIN_STATUSES]
    if len(due) > 1:
        return _failure("ambiguous"), None, None
    if due:
        appt, patient = due[0]
        return {"ok": True}, appt, patient
    if in_window or any(a.status in ARRIVED_STATUSES for a, _ in found):
        return _failure("already_checked_in"), None, None
    return _failure("outside_window"), None, None


def _notify_locked(session: Session, kiosk: Kiosk, now: datetime) -> int:
    """Tell each of the tenant's front desk users that the kiosk is locked."""
    users = [s.id for s in staff_with_role(session, kiosk.tenant, "front_desk")]
    for user_id in users:
        n = Notification(
            tenant=kiosk.tenant,
            id=new_id("n"),
            user_id=user_id,
            kind=NOTIFICATION_KIND,
            severity="alert",
            title=f"Kiosk {kiosk.name} is locked",
            body=(
                "Too many check-ins at this kiosk found no appointment. It answers "
                f"'see the front desk' until {iso_utc(kiosk.locked_until or now)}."
            ),
            event_id=new_id("kl"),
            event_type="kiosk:locked",
            patient_id="",
            entity="kiosk",
            entity_id=kiosk.id,
            attempt=1,
            escalated=False,
            created_at=now,
            updated_at=now,
            version=1,
        )
        session.add(n)
        enqueue_message(
            session,
            tenant=kiosk.tenant,
            topic=notification_topic(kiosk.tenant, user_id, n.id),
            body=notification_json(n),
            kind="notification",
            patient_id="",
            entity_id=kiosk.id,
            actor=kiosk.id,
        )
    return len(users)


@dataclass(frozen=True, slots=True)
class Answer:
    body: dict[str, Any]
    repeated: bool = False  # the same correlation data was answered before

    @property
    def outcome(self) -> str:
        return "ok" if self.body.get("ok") else str(self.body.get("reason"))


def _stored_answer(session: Session, row: KioskAnswer) -> Answer:
    """A repeat: the stored outcome, an ``ok`` rebuilt from its appointment."""
    if row.outcome == "ok" and row.appointment_id is not None:
        appt = session.get(Appointment, (row.tenant, row.appointment_id))
        if appt is not None:
            return Answer(_ok_body(session, appt), repeated=True)
    return Answer(_failure(row.outcome), repeated=True)


def audit_checkin(
    session: Session, tenant: str, kiosk_id: str, outcome: str, appointment_id: str | None
) -> None:
    """The audit row of one check-in attempt: its outcome and, for an ``ok``, the
    appointment. Never what was typed."""
    details: dict[str, Any] = {"outcome": outcome}
    if appointment_id is not None:
        details["appointmentId"] = appointment_id
    record_audit(
        session,
        tenant=tenant,
        actor=kiosk_id,
        actor_kind="kiosk",
        kind="kiosk.checkin",
        subject=kiosk_id,
        details=details,
    )


def enabled_kiosk(session: Session, tenant: str, kiosk_id: str) -> Kiosk | None:
    kiosk = session.get(Kiosk, (tenant, kiosk_id))
    if kiosk is None or kiosk.disabled_at is not None or kiosk.secret_hash is None:
        return None
    return kiosk


def check_in(
    session: Session,
    clinic: Clinic,
    *,
    tenant: str,
    kiosk_id: str,
    correlation: bytes,
    request: CheckInRequest,
    window: ArrivalWindow,
    limit: RateLimit,
) -> Answer | None:
    """Answer one check-in request of an enabled kiosk (None: no such kiosk).

    The answer row, the check-in and its event commit in one transaction; the answer
    is keyed by the correlation data's digest, so a repeated request (or the same
    request handled by two processes) reads the first answer back."""
    key = digest(correlation)
    previous = session.get(KioskAnswer, (tenant, kiosk_id, key))
    if previous is not None:
        return _stored_answer(session, previous)
    # The kiosk's row lock serialises its requests (PostgreSQL; SQLite has one writer).
    # populate_existing: the kiosk may already be in the identity map (enabled_kiosk),
    # as it was before the lock; its lock-out and disabled state must be read afresh.
    kiosk = session.get(Kiosk, (tenant, kiosk_id), with_for_update=True, populate_existing=True)
    if kiosk is None or kiosk.disabled_at is not None or kiosk.secret_hash is None:
        return None
    previous = session.get(KioskAnswer, (tenant, kiosk_id, key))
    if previous is not None:
        answer = _stored_answer(session, previous)
        session.rollback()
        return answer
    now = utcnow()
    kiosk.last_seen_at = now
    appt: Appointment | None = None
    if kiosk.locked_until is not None and kiosk.locked_until > now:
        body = _failure("rate_limited")
    else:
        body, appt, _ = _match(session, clinic, kiosk, request, window, now)
        if appt is not None:
            body = _ok_body(session, appt)
    outcome = "ok" if body["ok"] else body["reason"]
    audit_checkin(session, tenant, kiosk_id, outcome, appt.id if appt is not None else None)
    session.add(
        KioskAnswer(
            tenant=tenant,
            kiosk_id=kiosk_id,
            correlation_hash=key,
            outcome=outcome,
            appointment_id=appt.id if appt is not None else None,
            created_at=now,
        )
    )
    if outcome in LOCKOUT_FAILURES:
        session.flush()
        failures = session.scalar(
            select(func.count())
            .select_from(KioskAnswer)
            .where(
                KioskAnswer.tenant == tenant,
                KioskAnswer.kiosk_id == kiosk_id,
                KioskAnswer.created_at > now - limit.window,
                KioskAnswer.outcome.in_(LOCKOUT_FAILURES),
            )
        )
        if (failures or 0) >= limit.max_failures:
            kiosk.locked_until = now + limit.lockout
            notified = _notify_locked(session, kiosk, now)
            record_audit(
                session,
                tenant=tenant,
                actor="hub",
                actor_kind="hub",
                kind="kiosk.locked",
                subject=kiosk_id,
                details={
                    "failures": failures,
                    "lockedUntil": iso_utc(kiosk.locked_until),
                    "notified": notified,
                },
            )
            log.warning("kiosk %s/%s locked; %d user(s) notified", tenant, kiosk_id, notified)
    try:
        if appt is not None:
            # Commits the answer with the check-in and its event.
            change_status(
                session,
                clinic,
                tenant=tenant,
                actor=kiosk_id,
                appt_id=appt.id,
                status="checked_in",
                reason=None,
                kiosk_name=kiosk.name,
            )
        else:
            session.commit()
    except Conflict:
        # The front desk checked the patient in meanwhile: answer from the new state.
        session.rollback()
        return check_in(
            session,
            clinic,
            tenant=tenant,
            kiosk_id=kiosk_id,
            correlation=correlation,
            request=request,
            window=window,
            limit=limit,
        )
    except IntegrityError:
        # Another process answered the same correlation data first: its answer stands.
        session.rollback()
        previous = session.get(KioskAnswer, (tenant, kiosk_id, key))
        if previous is None:
            raise
        return _stored_answer(session, previous)
    return Answer(body)
