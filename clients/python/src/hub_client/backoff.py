"""Reconnect and retry delays: exponential with jitter, and the server's Retry-After."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delay before retry number ``attempt`` (0-based): a random value between half and
    all of ``min(maximum, initial * factor**attempt)``, so a fleet of clients that lost
    the broker together does not come back together, and no retry is immediate."""

    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.initial <= self.maximum:
            raise ValueError("backoff needs 0 < initial <= maximum")
        if self.factor < 1:
            raise ValueError("backoff factor must be at least 1")

    def ceiling(self, attempt: int) -> float:
        # Bounded exponent: factor**attempt must not overflow for a long outage.
        return min(self.maximum, self.initial * self.factor ** min(attempt, 64))

    def delay(self, attempt: int, *, retry_after: float | None = None) -> float:
        """Seconds to wait; never less than the server's ``Retry-After``. Past it, a
        random share of a quarter of it (at least half of ``initial``): the partners
        a rate limit refused together do not all come back in the same second."""
        cap = self.ceiling(max(attempt, 0))
        wait = random.uniform(cap / 2, cap)
        if retry_after is not None:
            spread = max(self.initial / 2, retry_after / 4)
            wait = max(wait, retry_after + random.uniform(0, spread))
        return wait


# A Retry-After beyond this is treated as this: a confused proxy must not park a
# partner for a day.
MAX_RETRY_AFTER = 300.0


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date), or None."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)
