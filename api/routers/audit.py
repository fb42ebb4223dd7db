"""The audit trail, for a tenant's admins (contract, section 12)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from api.deps import Admin, DbSession
from api.domain.audit import parse_kinds
from api.errors import Invalid
from api.schemas import Out
from hub.audit import list_audit

router = APIRouter(prefix="/audit", tags=["audit"])


class AuditEntry(Out):
    id: int
    at: datetime
    actor: str
    actor_kind: str
    kind: str
    subject: str | None
    details: dict[str, Any]


class AuditPage(Out):
    entries: list[AuditEntry]
    # Pass as ``after`` for the next page (the last entry's id, or ``after`` if none).
    next_after: int


@router.get("", response_model=AuditPage)
def get_audit(
    user: Admin,
    db: DbSession,
    after: Annotated[int, Query(ge=0, description="entries with a greater id")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    actor: Annotated[
        str | None, Query(min_length=1, max_length=64, description="a user, kiosk or partner id")
    ] = None,
    kind: Annotated[
        str | None,
        Query(
            max_length=1000, description="comma-separated kinds or subjects: session,kiosk.checkin"
        ),
    ] = None,
) -> dict[str, Any]:
    """The caller's tenant's audit entries with ``id > after``, oldest first."""
    try:
        kinds = parse_kinds(kind)
    except ValueError as exc:
        raise Invalid(str(exc)) from None
    page = list_audit(db, user.tenant, after=after, limit=limit, actor=actor, kinds=kinds)
    return {"entries": page.entries, "nextAfter": page.next_after}
