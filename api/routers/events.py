"""Replay, service publishing and the catalog."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from api.deps import CurrentUser, DbSession, Origin, Reader, RuntimeDep, ServiceOrAdmin
from api.domain.audit import audit_replay
from api.errors import ApiError, Forbidden, Gone, Invalid
from api.rate_limits import rate_limits
from api.runtime import Runtime, known_patients
from api.schemas import EventPage, PublishBatch, PublishedBatch, PublishedEvent, PublishEvent
from hub.catalog import CATALOG, catalog_json_schema
from hub.errors import EventValidationError, UnknownEventTypeError, UnknownPatientsError
from hub.outbox import EmittedEvent, PreparedEvent, prepare_event, replay
from hub.tokens import Principal

router = APIRouter(prefix="/events", tags=["events"])

# Who may publish (ServiceOrAdmin); api.fastpath checks the same.
PUBLISHERS = ("service", "admin")


async def limit_replay(user: Reader, request: Request) -> None:
    """Each replay request counts one, before it reads or audits anything."""
    rate_limits(request).check("replay", tenant=user.tenant, caller=user.kind, caller_id=user.sub)


def limit_publish(request: Request, user: Principal, count: int) -> None:
    """A publishing request counts its events (api.fastpath counts the same)."""
    rate_limits(request).check(
        "writes", tenant=user.tenant, caller="user", caller_id=user.sub, cost=count
    )


@router.get("", response_model=EventPage, dependencies=[Depends(limit_replay)])
def get_events(
    user: Reader,
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
    ``after`` were already pruned: the client must refetch its view. A partner reads
    only the types granted to it (seqs then have holes)."""
    max_limit: int = request.app.state.runtime.settings.replay_max_limit
    # Each type once (dict keeps the order): the list goes into the query and the audit.
    type_list = list(dict.fromkeys(t.strip() for t in (types or "").split(",") if t.strip()))
    unknown = [t for t in type_list or [] if t not in CATALOG]
    if unknown:
        raise Invalid(f"unknown event types: {', '.join(unknown)}")
    if user.allowed_types is not None:
        refused = [t for t in type_list or [] if t not in user.allowed_types]
        if refused:
            raise Forbidden(f"event types not granted to this partner: {', '.join(refused)}")
        type_list = type_list or sorted(user.allowed_types)
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
    audit_replay(
        request.app.state.runtime.sessions,
        tenant=user.tenant,
        actor=user.sub,
        actor_kind=user.kind,
        after=after,
        types=type_list,
        patient_filtered=patient_id is not None,
        events=page.events,
        read=db,
    )
    return EventPage(events=page.events, latest_seq=page.latest_seq)


def _prepare(
    body: PublishEvent, user: Principal, origin: str | None, index: int | None = None
) -> PreparedEvent:
    """Validate one event of ``user``'s tenant; errors name the batch index if any."""
    where = "" if index is None else f"events[{index}]: "
    try:
        return prepare_event(
            tenant=user.tenant,
            event_type=body.type,
            actor=user.sub,
            patient_id=body.patient_id,
            entity_id=body.entity_id,
            data=body.data,
            origin=origin,
        )
    except UnknownEventTypeError:
        raise Invalid(f"{where}unknown event type {body.type!r}") from None
    except EventValidationError as exc:
        if index is None:
            raise
        details = [
            {
                "field": ".".join(
                    ["events", str(index), "data", *(str(p) for p in e.get("loc", []))]
                ),
                "message": str(e.get("msg")),
            }
            for e in exc.errors
        ]
        raise Invalid(f"{where}invalid payload for {body.type}", details=details) from None
    except ValueError as exc:
        raise Invalid(f"{where}{exc}") from None


def _published(e: EmittedEvent) -> PublishedEvent:
    return PublishedEvent(id=e.id, seq=e.seq, type=e.type, topic=e.topic)


async def _prepare_all(
    bodies: list[PublishEvent],
    user: Principal,
    runtime: Runtime,
    *,
    batch: bool,
    origin: str | None = None,
) -> list[PreparedEvent]:
    """Validate every event. An unknown patient is a 404 even when the event is also
    invalid, as on every other route: the patient check reads the database only then
    (on the valid path, the writer checks the patients in its transaction)."""
    for i, b in enumerate(bodies):
        if b.type not in CATALOG:  # before anything else, as it always was
            where = f"events[{i}]: " if batch else ""
            raise Invalid(f"{where}unknown event type {b.type!r}")
    try:
        return [_prepare(b, user, origin, i if batch else None) for i, b in enumerate(bodies)]
    except (ApiError, EventValidationError):
        pairs = {(user.tenant, b.patient_id) for b in bodies}

        def known() -> set[tuple[str, str]]:
            with runtime.engine.connect() as conn:
                return known_patients(conn, pairs)

        found = await run_in_threadpool(known)
        missing = sorted({pid for tenant, pid in pairs if (tenant, pid) not in found})
        if missing:
            raise UnknownPatientsError(missing) from None
        raise


@router.post("", status_code=202, response_model=PublishedEvent)
async def publish_event(
    body: PublishEvent,
    user: ServiceOrAdmin,
    runtime: RuntimeDep,
    request: Request,
    origin: Origin,
) -> PublishedEvent:
    """Publish a catalog event from another backend service, through the outbox.
    Committed by the group-commit writer (hub.writer) with whatever else is waiting."""
    limit_publish(request, user, 1)
    prepared = await _prepare_all([body], user, runtime, batch=False, origin=origin)
    (emitted,) = await runtime.writer.write(prepared)
    return _published(emitted)


@router.post("/batch", status_code=202, response_model=PublishedBatch)
async def publish_batch(
    body: PublishBatch,
    user: ServiceOrAdmin,
    runtime: RuntimeDep,
    request: Request,
    origin: Origin,
) -> PublishedBatch:
    """Publish up to 500 events in one transaction: all are valid and committed, each
    with its seq in the order given, or none is (422 or 404 naming what is wrong).
    Each event counts as one write against the rate limit."""
    limit_publish(request, user, len(body.events))
    prepared = await _prepare_all(body.events, user, runtime, batch=True, origin=origin)
    emitted = await runtime.writer.write(prepared)
    return PublishedBatch(events=[_published(e) for e in emitted])


@router.get("/catalog")
def get_catalog(_: CurrentUser) -> dict[str, Any]:
    return {"events": catalog_json_schema()}
