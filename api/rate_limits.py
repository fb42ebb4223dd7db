"""Rate limits per caller and per tenant (docs/operations.md, "Rate limits").

Three kinds of request are limited, each by two token buckets that must both have the
tokens: one of the caller (a user's ``(tenant, sub)``, a partner's or a kiosk's
``(tenant, id)``) and one of its tenant. A refused request takes nothing from either,
and is refused before it changes anything: ``429 rate_limited`` with ``Retry-After``.

- credentials: ``POST /realtime/credentials``, ``/partners/credentials``,
  ``/kiosks/credentials`` (a renewal counts like a new issue);
- replay: ``GET /events``;
- writes: the domain routes' POST, PUT, PATCH and DELETE (one each), ``POST /events``
  (one) and ``POST /events/batch`` (one per event).

Each api process counts for itself (docs/DECISIONS.md, 54).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Literal

from fastapi import Depends, Request

from api.deps import SignedIn
from api.errors import RateLimited
from api.settings import Settings
from hub.ratelimit import Rate, TokenBuckets, retry_after_seconds, take_all

Kind = Literal["credentials", "replay", "writes"]
# Who is counted: a signed-in user, a partner (its secret or access token), a kiosk.
Caller = Literal["user", "partner", "kiosk"]

_WHAT: dict[Kind, str] = {
    "credentials": "credential requests",
    "replay": "replay requests",
    "writes": "writes",
}


@dataclass(frozen=True, slots=True)
class _Pair:
    caller: TokenBuckets
    tenant: TokenBuckets


class RateLimits:
    """The buckets of one api process. Called from the event loop only."""

    def __init__(self, settings: Settings) -> None:
        self.enabled = settings.rate_limit_enabled
        keys = settings.rate_limit_max_keys

        def pair(kind: Kind) -> _Pair:
            def rate(scope: str) -> Rate:
                burst = getattr(settings, f"rate_limit_{kind}{scope}_burst")
                per_minute = getattr(settings, f"rate_limit_{kind}{scope}_per_minute")
                return Rate(burst=burst, per_second=per_minute / 60)

            return _Pair(
                TokenBuckets(rate(""), max_keys=keys),
                TokenBuckets(rate("_tenant"), max_keys=keys),
            )

        self._pairs: dict[Kind, _Pair] = {k: pair(k) for k in _WHAT}

    def check(
        self, kind: Kind, *, tenant: str, caller: Caller, caller_id: str, cost: int = 1
    ) -> None:
        """Count ``cost`` for the caller and its tenant, or raise ``RateLimited``."""
        if not self.enabled:
            return
        pair = self._pairs[kind]
        key: Hashable = (tenant, caller, caller_id)
        wait = take_all(((pair.caller, key), (pair.tenant, tenant)), cost)
        if wait > 0:
            seconds = retry_after_seconds(wait)
            raise RateLimited(f"too many {_WHAT[kind]}; retry in {seconds} s", retry_after=seconds)


def rate_limits(request: Request) -> RateLimits:
    """The process's limits (``create_app`` puts them in the app's state)."""
    limits: RateLimits = request.app.state.rate_limits
    return limits


_READ_ONLY = frozenset({"GET", "HEAD", "OPTIONS"})


async def limit_writes(request: Request, user: SignedIn) -> None:
    """A router dependency: each changing request of a signed-in user counts one."""
    if request.method not in _READ_ONLY:
        rate_limits(request).check("writes", tenant=user.tenant, caller="user", caller_id=user.sub)


WriteLimit = Depends(limit_writes)
