"""Replay, service publishing and the catalog."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from sqlalchemy import select

from api.deps import CurrentUser, DbSession, ServiceOrAdmin
from api.errors import Gone, Invalid, NotFound
from api.models import Patient
from api.schemas import EventPage, PublishedEvent, PublishEvent
from hub.catalog import CATALOG, catalog_json_schema
from hub.errors import UnknownEventTypeError
from hub.outbox import emit, replay

router = APIRouter(prefix="/events", tags=["events"])


@router.get("", response_model=EventPage)
def get_events(
    user: CurrentUser,
    db: DbSession,
    request: Request,
    after: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1)] = 100,
    types: Annotated[
        str | None, Query(max_length=2000, description="comma-separated event types")
    ] = None,
    patient_id: Annotated[str | None, Query(alias="patientId", max_length=64)] = None,
) -> EventPage:
    """The tenant's events with ``seq > after``, oldest first. 410 when events after
    ``after`` were already pruned: the client must refetch its view."""
    max_limit: int = request.app.state.runtime.settings.replay_max_limit
    type_list = [t.strip() for t in types.split(",") if t.strip()] if types else None
    unknown = [t for t in type_list or [] if t not in CATALOG]
    if unknown:
        raise Invalid(f"unknown event types: {', '.join(unknown)}")
    page = replay(
        db,
        user.tenant,
        after=after,
        limit=min(limit, max_limit),
        types=type_list,
        patient_id=patient_id,
    )
    # Events after `after` existed but are gone: pruned past retention (possibly all,
    # or around an old unpublished event that pruning keeps).
    oldest_kept = page.oldest_seq if page.oldest_seq is not None else page.latest_seq + 1
    seqs = [e["seq"] for e in page.events]
    unfiltered = not type_list and patient_id is None
    hole = unfiltered and seqs != list(range(after + 1, after + 1 + len(seqs)))
    if after < min(oldest_kept - 1, page.latest_seq) or hole:
        raise Gone(
            f"events after seq {after} are no longer kept (oldest kept: {oldest_kept}); "
            "refetch the view and resume from latestSeq",
            details=[{"oldestSeq": oldest_kept, "latestSeq": page.latest_seq}],
        )
    return EventPage(events=page.events, latest_seq=page.latest_seq)


@router.post("", status_code=202, response_model=PublishedEvent)
def publish_event(body: PublishEvent, user: ServiceOrAdmin, db: DbSession) -> PublishedEvent:
    """Publish a catalog event from another backend service, through the outbox."""
    if body.type not in CATALOG:
        raise Invalid(f"unknown event type {body.type!r}")
    if (
        db.scalar(
            select(Patient.id).where(Patient.tenant == user.tenant, Patient.id == body.patient_id)
        )
        is None
    ):
        raise NotFound(f"patient {body.patient_id} not found")
    try:
        emitted = emit(
            db,
            tenant=user.tenant,
            event_type=body.type,
            actor=user.sub,
            patient_id=body.patient_id,
            entity_id=body.entity_id,
            data=body.data,
        )
    except UnknownEventTypeError as exc:
        raise Invalid(str(exc)) from None
    db.commit()
    return PublishedEvent(id=emitted.id, seq=emitted.seq, type=emitted.type, topic=emitted.topic)


@router.get("/catalog")
def get_catalog(_: CurrentUser) -> dict[str, Any]:
    return {"events": catalog_json_schema()}
