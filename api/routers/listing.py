"""Shared pieces of the list routes."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from fastapi import Query
from sqlalchemy import select
from sqlalchemy.orm import Session

T = TypeVar("T")

Limit = Annotated[int, Query(ge=1, le=500)]
PatientFilter = Annotated[str | None, Query(alias="patientId", max_length=64)]


def list_rows(session: Session, model: type[T], tenant: str, limit: int, **filters: Any) -> list[T]:
    """The tenant's rows matching every filter that is set, newest first."""
    m: Any = model
    query = select(model).where(m.tenant == tenant)
    for column, value in filters.items():
        if value is not None:
            query = query.where(getattr(m, column) == value)
    return list(session.scalars(query.order_by(m.created_at.desc(), m.id).limit(limit)))
