from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from api.deps import DbSession, SignedIn
from api.domain import notifications as domain
from api.routers.listing import Limit
from api.schemas import NotificationOut, NotificationPage, NotificationReceipt, NotificationSeen

router = APIRouter(prefix="/notifications", tags=["notifications"])


@router.get("", response_model=NotificationPage)
def list_notifications(
    user: SignedIn,
    db: DbSession,
    unacknowledged: Annotated[bool, Query(description="only the open ones")] = False,
    limit: Limit = 100,
) -> JSONResponse:
    """The caller's notifications: unacknowledged first (critical first), then newest.
    Each item is exactly the JSON of its newest MQTT message."""
    rows = domain.list_for_user(
        db, tenant=user.tenant, user_id=user.sub, unacknowledged_only=unacknowledged, limit=limit
    )
    return JSONResponse({"notifications": [domain.notification_json(n) for n in rows]})


@router.post("/{notification_id}/ack", response_model=NotificationOut)
def acknowledge(notification_id: str, user: SignedIn, db: DbSession) -> JSONResponse:
    n = domain.acknowledge(
        db, tenant=user.tenant, user_id=user.sub, notification_id=notification_id
    )
    return JSONResponse(domain.notification_json(n))


@router.post("/{notification_id}/seen", response_model=NotificationReceipt)
def seen(
    notification_id: str, body: NotificationSeen, user: SignedIn, db: DbSession
) -> JSONResponse:
    """The caller's client received and displayed the notification: audited once
    (``notification.delivered``, ``notification.displayed``); again changes nothing."""
    n = domain.mark_seen(
        db,
        tenant=user.tenant,
        user_id=user.sub,
        notification_id=notification_id,
        received_at=body.received_at,
        displayed_at=body.displayed_at,
    )
    return JSONResponse(domain.receipt_json(n))
