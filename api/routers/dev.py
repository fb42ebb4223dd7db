"""Development only: mint a token for a demo user. Never mounted in production."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from fastapi import APIRouter, Request
from pydantic import Field

from api.errors import Forbidden, Invalid
from api.schemas import Body, Out
from api.settings import Settings
from hub.tokens import mint_dev_token

router = APIRouter(prefix="/dev", tags=["development"])


class DevTokenRequest(Body):
    tenant: str = Field(min_length=1, max_length=40)
    user: str = Field(min_length=1, max_length=64)
    roles: list[Literal["front_desk", "provider", "billing", "admin", "service"]] = Field(
        min_length=1
    )
    ttl_seconds: int = Field(default=8 * 3600, ge=60, le=24 * 3600)


class DevToken(Out):
    token: str


LOOPBACK = {"127.0.0.1", "::1", "localhost"}


@router.post("/token", response_model=DevToken)
def dev_token(body: DevTokenRequest, request: Request) -> DevToken:
    """Anyone who reaches this route could sign in as anyone, so besides being absent
    outside development it only answers callers on this machine."""
    if request.client is None or request.client.host not in LOOPBACK:
        raise Forbidden("development sign-in is only available from this machine")
    settings: Settings = request.app.state.settings
    secret = settings.resolved_jwt_secret
    if secret is None:  # pragma: no cover - the router is not mounted then
        raise Invalid("development tokens are disabled")
    try:
        token = mint_dev_token(
            secret=secret,
            tenant=body.tenant,
            user=body.user,
            roles=list(body.roles),
            ttl=timedelta(seconds=body.ttl_seconds),
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
        )
    except ValueError as exc:
        raise Invalid(str(exc)) from None
    return DevToken(token=token)
