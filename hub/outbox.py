"""The transactional outbox: events are rows written in the same transaction as the
change that caused them, numbered per tenant without gaps.

The ``events`` table is both the outbox (rows with ``published_at IS NULL``) and the
replay log behind ``GET /events``.
"""

from __future__ import annotations

import functools
import json
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import (
    BigInteger,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    delete,
    event,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapped, Session, mapped_column

from hub import metrics
from hub.catalog import ALERTING_TYPES, get_event_type
from hub.db import Base, UTCDateTime, driver_cursor, placeholder, utcnow
from hub.envelope import build_envelope, dumps, parse_origin
from hub.errors import EventValidationError
from hub.pgnotify import notify_outbox
from hub.topics import Topic, event_topic, snapshot_topic, validate_id, validate_tenant

_BigId = BigInteger().with_variant(Integer(), "sqlite")
# Constant type names only (never a value from outside).
_ALERTING = "type IN ({})".format(", ".join(f"'{t}'" for t in ALERTING_TYPES))


class TenantSequence(Base):
    """The last seq handed out per tenant. Incrementing this row inside the writing
    transaction holds its lock until commit, so seqs commit in order and a rollback
    gives its number back: no gaps among committed events."""

    __tablename__ = "tenant_sequences"
    tenant: Mapped[str] = mapped_column(String(40), primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)


class OutboxEvent(Base):
    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("tenant", "seq", name="uq_events_tenant_seq"),
        Index(
            "ix_events_unpublished",
            "pk",
            sqlite_where=text("published_at IS NULL"),
            postgresql_where=text("published_at IS NULL"),
        ),
        Index("ix_events_published_at", "published_at"),
        Index("ix_events_entity", "tenant", "entity_id", "seq"),
        Index(
            "ix_events_alerting",
            "tenant",
            "seq",
            sqlite_where=text(_ALERTING),
            postgresql_where=text(_ALERTING),
        ),
    )

    pk: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(36), unique=True, nullable=False)
    tenant: Mapped[str] = mapped_column(String(40), nullable=False)
    # NULL for rows that are not events and never appear in replay: a snapshot
    # refresh (a retained snapshot re-published without an event, today's board at the
    # start of the day; snapshot_topic set) or a plain message such as a user's
    # notification (snapshot_topic NULL; ``type`` names the kind of message).
    seq: Mapped[int | None] = mapped_column(BigInteger)
    type: Mapped[str] = mapped_column(String(64), nullable=False)
    actor: Mapped[str] = mapped_column(String(128), nullable=False)
    patient_id: Mapped[str] = mapped_column(String(64), nullable=False)
    entity_id: Mapped[str] = mapped_column(String(64), nullable=False)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    topic: Mapped[str] = mapped_column(String(255), nullable=False)
    payload: Mapped[str] = mapped_column(Text, nullable=False)
    # A retained snapshot to publish with the event: topic set and payload NULL clears it.
    snapshot_topic: Mapped[str | None] = mapped_column(String(255))
    snapshot_payload: Mapped[str | None] = mapped_column(Text)
    snapshot_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    def envelope(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.payload)
        return result


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What to do with the entity's retained snapshot when this event is published."""

    keep_until: datetime | None  # None: clear the retained snapshot

    @classmethod
    def keep(cls, until: datetime) -> Snapshot:
        return cls(keep_until=until)

    @classmethod
    def clear(cls) -> Snapshot:
        return cls(keep_until=None)


@dataclass(frozen=True, slots=True)
class EmittedEvent:
    id: str
    tenant: str
    seq: int
    type: str
    topic: str
    envelope: dict[str, Any]


# --- commit notification: wakes relays in this process as soon as events commit ---

log = logging.getLogger("hub.outbox")
_commit_listeners: set[Callable[[], None]] = set()
_DIRTY = "hub.outbox.dirty"
# The types of the events a session emitted, counted once its transaction commits.
_EMITTED = "hub.outbox.emitted"
# The broker connection whose request this session serves (set_origin).
_ORIGIN = "hub.outbox.origin"


def add_commit_listener(listener: Callable[[], None]) -> None:
    _commit_listeners.add(listener)


def remove_commit_listener(listener: Callable[[], None]) -> None:
    _commit_listeners.discard(listener)


def set_origin(session: Session, origin: str | None) -> None:
    """Mark every event ``session`` emits as made by broker connection ``origin`` (the
    client id of the window that asked for the change), so that window can tell its own
    changes from another's, even another window of the same user. A malformed origin is
    dropped, as is None."""
    checked = parse_origin(origin)
    if checked is None:
        session.info.pop(_ORIGIN, None)
    else:
        session.info[_ORIGIN] = checked


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    emitted = session.info.pop(_EMITTED, None)
    if emitted:
        metrics.count_committed(emitted)
    if session.info.pop(_DIRTY, False):
        notify_committed()


@event.listens_for(Session, "before_commit")
def _before_commit(session: Session) -> None:
    # Relays in other processes LISTEN (hub.pgnotify); delivered only if this commits.
    if session.info.get(_DIRTY):
        notify_outbox(session)


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_DIRTY, None)
    session.info.pop(_EMITTED, None)


def _next_seq(session: Session, tenant: str) -> int:
    dialect = session.get_bind().dialect.name
    insert_fn = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(
        insert_fn(TenantSequence)
        .values(tenant=tenant, last_seq=0)
        .on_conflict_do_nothing(index_elements=["tenant"])
    )
    seq: int = session.execute(
        update(TenantSequence)
        .where(TenantSequence.tenant == tenant)
        .values(last_seq=TenantSequence.last_seq + 1)
        .returning(TenantSequence.last_seq)
    ).scalar_one()
    return seq


def _check_identity(
    event_type: str, entity: str, payload: dict[str, Any], patient_id: str, entity_id: str
) -> None:
    """The payload must describe the entity its topic names: data about one patient
    must never travel on another patient's topic."""
    errors = []
    if payload.get("patientId", patient_id) != patient_id:
        errors.append({"loc": ["patientId"], "msg": "does not match the event's patientId"})
    if entity == "patient" and entity_id != patient_id:
        errors.append({"loc": ["entityId"], "msg": "a patient event's entityId is the patient id"})
    if payload.get("id", entity_id) != entity_id:
        errors.append({"loc": ["id"], "msg": "does not match the event's entityId"})
    if errors:
        raise EventValidationError(event_type, [{**e, "type": "mismatch"} for e in errors])


@dataclass(frozen=True, slots=True)
class PreparedEvent:
    """A validated event that has no seq yet: what ``emit`` and the writer insert."""

    tenant: str
    type: str
    entity: str
    actor: str
    patient_id: str
    entity_id: str
    data: dict[str, Any]
    topic: str
    origin: str | None = None  # the broker connection that made the change, if known


def prepare_event(
    *,
    tenant: str,
    event_type: str,
    actor: str,
    patient_id: str,
    entity_id: str,
    data: Any,
    origin: str | None = None,
) -> PreparedEvent:
    """Validate an event against the catalog and its topic scheme; raises
    ``UnknownEventTypeError``, ``EventValidationError`` or ``ValueError``."""
    etype = get_event_type(event_type)
    payload = etype.validate(data).model_dump(mode="json", by_alias=True)
    validate_tenant(tenant)
    validate_id(patient_id, "patient id")
    validate_id(entity_id, "entity id")
    if not actor or len(actor) > 128:
        raise ValueError("actor must be 1-128 characters")
    _check_identity(event_type, etype.entity, payload, patient_id, entity_id)
    topic = event_topic(tenant, patient_id, etype.entity, entity_id, etype.action)
    checked = parse_origin(origin)
    if checked is not None and not checked.startswith(f"{tenant}.{actor}."):
        # Only the caller's own connections ({tenant}.{user}.{suffix}): naming another
        # user's window would keep that window quiet about this change.
        checked = None
    return PreparedEvent(
        tenant,
        event_type,
        etype.entity,
        actor,
        patient_id,
        entity_id,
        payload,
        topic.value,
        checked,
    )


def event_row(
    event: PreparedEvent, *, seq: int, occurred_at: datetime, event_id: str | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The envelope of ``event`` numbered ``seq``, and its ``events`` row (column values)."""
    event_id = event_id or str(uuid.uuid4())
    envelope = build_envelope(
        event_id=event_id,
        event_type=event.type,
        tenant=event.tenant,
        seq=seq,
        occurred_at=occurred_at,
        actor=event.actor,
        patient_id=event.patient_id,
        entity_id=event.entity_id,
        data=event.data,
        origin=event.origin,
    )
    row = {
        "id": event_id,
        "tenant": event.tenant,
        "seq": seq,
        "type": event.type,
        "actor": event.actor,
        "patient_id": event.patient_id,
        "entity_id": event.entity_id,
        "occurred_at": occurred_at,
        "topic": event.topic,
        "payload": dumps(envelope),
    }
    return envelope, row


def emit(
    session: Session,
    *,
    tenant: str,
    event_type: str,
    actor: str,
    patient_id: str,
    entity_id: str,
    data: Any,
    snapshot: Snapshot | None = None,
    occurred_at: datetime | None = None,
) -> EmittedEvent:
    """Validate ``data`` against the catalog and write the event into ``session``'s
    transaction. Nothing is published unless that transaction commits."""
    prepared = prepare_event(
        tenant=tenant,
        event_type=event_type,
        actor=actor,
        patient_id=patient_id,
        entity_id=entity_id,
        data=data,
        origin=session.info.get(_ORIGIN),
    )
    seq = _next_seq(session, tenant)
    envelope, values = event_row(prepared, seq=seq, occurred_at=occurred_at or utcnow())
    row = OutboxEvent(**values)
    if snapshot is not None:
        row.snapshot_topic = snapshot_topic(tenant, patient_id, prepared.entity, entity_id).value
        if snapshot.keep_until is not None:
            row.snapshot_payload = row.payload
            row.snapshot_expires_at = snapshot.keep_until
    session.add(row)
    session.flush()
    session.info[_DIRTY] = True
    session.info.setdefault(_EMITTED, []).append(event_type)
    return EmittedEvent(row.id, tenant, seq, event_type, prepared.topic, envelope)


def notify_committed() -> None:
    """Wake this process's relay after a commit that wrote events. The commit has
    happened: a failing listener must not turn it into an error for the caller (the
    relay's poll still finds the events)."""
    for listener in list(_commit_listeners):
        try:
            listener()
        except Exception:
            log.exception("outbox commit listener failed")


def refresh_snapshot(session: Session, *, latest: OutboxEvent, keep_until: datetime) -> None:
    """Re-publish ``latest`` (the entity's newest event) as its retained snapshot.

    Goes through the outbox like an event, so it is published in commit order with
    the events around it: a change committed after this refresh also lands after it.
    """
    if latest.seq is None:
        raise ValueError("a snapshot refresh must point at an event")
    etype = get_event_type(latest.type)
    topic = snapshot_topic(latest.tenant, latest.patient_id, etype.entity, latest.entity_id)
    session.add(
        OutboxEvent(
            id=str(uuid.uuid4()),
            tenant=latest.tenant,
            seq=None,
            type=latest.type,
            actor=latest.actor,
            patient_id=latest.patient_id,
            entity_id=latest.entity_id,
            occurred_at=utcnow(),
            topic=topic.value,
            payload=latest.payload,
            snapshot_topic=topic.value,
            snapshot_payload=latest.payload,
            snapshot_expires_at=keep_until,
        )
    )
    session.info[_DIRTY] = True


def enqueue_message(
    session: Session,
    *,
    tenant: str,
    topic: Topic,
    body: dict[str, Any],
    kind: str,
    patient_id: str,
    entity_id: str,
    actor: str,
) -> None:
    """Queue a plain QoS 1 message (a user's notification) in ``session``'s
    transaction. It is not an event: no seq, never replayed, not retained, but it is
    published in commit order with the events around it, and only if this commits."""
    if not topic.value.startswith(f"tenants/{validate_tenant(tenant)}/"):
        raise ValueError(f"topic {topic.value!r} is outside tenant {tenant!r}")
    session.add(
        OutboxEvent(
            id=str(uuid.uuid4()),
            tenant=tenant,
            seq=None,
            type=kind,
            actor=actor,
            patient_id=patient_id,
            entity_id=entity_id,
            occurred_at=utcnow(),
            topic=topic.value,
            payload=dumps(body),
        )
    )
    session.info[_DIRTY] = True


def latest_event(session: Session, tenant: str, entity_id: str) -> OutboxEvent | None:
    """The newest event about one entity still kept (pruning may have removed it)."""
    return session.scalar(
        select(OutboxEvent)
        .where(
            OutboxEvent.tenant == tenant,
            OutboxEvent.entity_id == entity_id,
            OutboxEvent.seq.is_not(None),
        )
        .order_by(OutboxEvent.seq.desc())
        .limit(1)
    )


# --- reading the outbox ---


class UnpublishedRow(NamedTuple):
    """What the relay needs of an unpublished outbox row."""

    pk: int
    tenant: str
    seq: int | None  # None: a snapshot refresh or a plain message, not an event
    topic: str
    payload: str
    snapshot_topic: str | None
    snapshot_payload: str | None
    snapshot_expires_at: datetime | None
    type: str = ""  # the event type (for metrics)
    occurred_at: datetime | None = None  # stamped in the writing transaction


_UNPUBLISHED = (
    "SELECT pk, tenant, seq, topic, payload, snapshot_topic, snapshot_payload, "
    "snapshot_expires_at, type, occurred_at FROM events WHERE published_at IS NULL "
    "AND pk > {p} ORDER BY pk LIMIT {p}"
)


@functools.lru_cache(maxsize=8)
def _unpublished_query(dialect: Dialect) -> tuple[str, Callable[[Any], Any] | None]:
    """The fetch in the dialect's parameter style, and how to read its date-time
    columns (UTC datetimes are text on SQLite): worked out once per dialect, not per
    pass."""
    column_type = OutboxEvent.__table__.c.snapshot_expires_at.type.dialect_impl(dialect)
    return _UNPUBLISHED.format(p=placeholder(dialect)), column_type.result_processor(dialect, None)


def fetch_unpublished(session: Session, limit: int, *, after: int = 0) -> list[UnpublishedRow]:
    """The oldest unpublished events with ``pk > after``. Within a tenant, pk order is
    seq order: the next seq cannot be taken (let alone inserted) before the previous
    one commits.

    Fixed SQL on the driver's cursor, in ``session``'s transaction: the relay runs this
    after every commit, and SQLAlchemy's statement handling cost more than the query."""
    conn = session.connection()
    sql, expires = _unpublished_query(conn.dialect)
    with driver_cursor(conn) as cursor:
        cursor.execute(sql, (after, limit))
        raw = cursor.fetchall()
    if expires is not None:
        raw = [(*r[:7], expires(r[7]), r[8], expires(r[9])) for r in raw]
    return [UnpublishedRow._make(r) for r in raw]


def mark_published(session: Session, pks: Sequence[int], at: datetime) -> None:
    if pks:
        session.execute(
            update(OutboxEvent)
            .where(OutboxEvent.pk.in_(pks), OutboxEvent.published_at.is_(None))
            .values(published_at=at)
        )


@dataclass(frozen=True, slots=True)
class OutboxStats:
    unpublished: int
    oldest_unpublished_at: datetime | None


def outbox_stats(session: Session) -> OutboxStats:
    count, oldest = session.execute(
        select(func.count(), func.min(OutboxEvent.occurred_at)).where(
            OutboxEvent.published_at.is_(None)
        )
    ).one()
    return OutboxStats(int(count), oldest)


def latest_seq(session: Session, tenant: str) -> int:
    value = session.scalar(select(TenantSequence.last_seq).where(TenantSequence.tenant == tenant))
    return int(value or 0)


@dataclass(frozen=True, slots=True)
class ReplayPage:
    events: list[dict[str, Any]]
    latest_seq: int
    oldest_seq: int | None


def replay(
    session: Session,
    tenant: str,
    *,
    after: int,
    limit: int,
    types: Sequence[str] | None = None,
    patient_id: str | None = None,
) -> ReplayPage:
    """The tenant's committed events with ``seq > after``, oldest first.

    ``latest_seq`` is read first: under READ COMMITTED a commit between the two reads
    then shows up as more events, never as a ``latest_seq`` the page does not cover."""
    newest = latest_seq(session, tenant)
    query = select(OutboxEvent.payload).where(OutboxEvent.tenant == tenant, OutboxEvent.seq > after)
    if types:
        query = query.where(OutboxEvent.type.in_(types))
    if patient_id is not None:
        query = query.where(OutboxEvent.patient_id == patient_id)
    rows = session.scalars(query.order_by(OutboxEvent.seq).limit(limit)).all()
    oldest = session.scalar(select(func.min(OutboxEvent.seq)).where(OutboxEvent.tenant == tenant))
    return ReplayPage(
        events=[json.loads(r) for r in rows],
        latest_seq=newest,
        oldest_seq=int(oldest) if oldest is not None else None,
    )


def prune_published(session: Session, older_than: timedelta) -> int:
    """Drop published events past the replay retention; unpublished ones never go."""
    cutoff = utcnow() - older_than
    # The newest row stays: SQLite would otherwise give its pk to the next row, and the
    # relay relies on pks rising in commit order (hub.relay, decision 49).
    newest = select(func.max(OutboxEvent.pk)).scalar_subquery()
    result = session.execute(
        delete(OutboxEvent).where(
            OutboxEvent.published_at.is_not(None),
            OutboxEvent.occurred_at < cutoff,
            OutboxEvent.pk < newest,
        )
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
