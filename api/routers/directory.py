"""The provider, staff and location directory of a tenant."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import select

from api.deps import Admin, CurrentUser, DbSession
from api.errors import Conflict
from api.models import Location, Staff
from api.schemas import LocationCreate, LocationOut, StaffCreate, StaffOut

router = APIRouter(tags=["directory"])


@router.get("/staff", response_model=list[StaffOut])
def list_staff(
    user: CurrentUser,
    db: DbSession,
    provider: Annotated[
        bool | None, Query(description="only providers, or only non-providers")
    ] = None,
) -> list[Staff]:
    query = select(Staff).where(Staff.tenant == user.tenant)
    if provider is not None:
        query = query.where(Staff.is_provider == provider)
    return list(db.scalars(query.order_by(Staff.name, Staff.id)))


@router.get("/providers", response_model=list[StaffOut])
def list_providers(user: CurrentUser, db: DbSession) -> list[Staff]:
    return list_staff(user, db, provider=True)


@router.post("/staff", status_code=201, response_model=StaffOut)
def create_staff(body: StaffCreate, user: Admin, db: DbSession) -> Staff:
    if db.get(Staff, (user.tenant, body.id)) is not None:
        raise Conflict(f"staff member {body.id} already exists")
    staff = Staff(tenant=user.tenant, active=True, **body.model_dump())
    db.add(staff)
    db.commit()
    return staff


@router.get("/locations", response_model=list[LocationOut])
def list_locations(user: CurrentUser, db: DbSession) -> list[Location]:
    return list(
        db.scalars(select(Location).where(Location.tenant == user.tenant).order_by(Location.name))
    )


@router.post("/locations", status_code=201, response_model=LocationOut)
def create_location(body: LocationCreate, user: Admin, db: DbSession) -> Location:
    if db.get(Location, (user.tenant, body.id)) is not None:
        raise Conflict(f"location {body.id} already exists")
    location = Location(tenant=user.tenant, **body.model_dump())
    db.add(location)
    db.commit()
    return location
