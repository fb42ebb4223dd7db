"""Token buckets in process memory: how many requests (or events) a key may make.

A bucket holds up to ``burst`` tokens and gains ``rate`` tokens a second. A request of
cost ``n`` takes ``n`` tokens. A full bucket always admits one request, however costly
(its tokens then go negative, and the debt is paid back before the next), so a cost
above the burst is slowed down, never refused for good.

Not thread safe on purpose: the api calls it from its event loop only, where one
check is a dict lookup and some arithmetic, with no lock to take.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Rate:
    """``burst`` tokens at most, refilled at ``per_second``."""

    burst: float
    per_second: float

    def __post_init__(self) -> None:
        if self.burst < 1 or self.per_second <= 0:
            raise ValueError("a rate needs burst >= 1 and per_second > 0")

    @property
    def refill_seconds(self) -> float:
        """How long an empty bucket takes to be full: after that, idle, it is forgotten."""
        return self.burst / self.per_second


class TokenBuckets:
    """One bucket per key, all with the same ``rate``. A bucket idle long enough to be
    full again is the same as no bucket, so it is dropped (a sweep at most once per
    refill time, or when ``max_keys`` is reached); at ``max_keys`` live buckets the
    oldest created tenth is dropped, which only ever lets a key through sooner."""

    def __init__(
        self,
        rate: Rate,
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self.rate = rate
        self.max_keys = max_keys
        self._clock = clock
        # key -> [tokens, when they were counted]
        self._buckets: dict[Hashable, list[float]] = {}
        self._next_sweep = clock() + rate.refill_seconds

    def __len__(self) -> int:
        return len(self._buckets)

    def now(self) -> float:
        return self._clock()

    def wait(self, key: Hashable, cost: float = 1.0, now: float | None = None) -> float:
        """Seconds until ``key`` may spend ``cost`` (0.0: it may now). Takes nothing."""
        now = self._clock() if now is None else now
        tokens = self._tokens(key, now)
        need = min(cost, self.rate.burst)
        return 0.0 if tokens >= need else (need - tokens) / self.rate.per_second

    def take(self, key: Hashable, cost: float = 1.0, now: float | None = None) -> None:
        """Spend ``cost`` tokens of ``key`` (call ``wait`` first: this does not check)."""
        now = self._clock() if now is None else now
        tokens = self._tokens(key, now)
        bucket = self._buckets.get(key)
        if bucket is None:
            self._make_room(now)
            self._buckets[key] = [tokens - cost, now]
        else:
            bucket[0] = tokens - cost
            bucket[1] = now

    def _tokens(self, key: Hashable, now: float) -> float:
        bucket = self._buckets.get(key)
        if bucket is None:
            return self.rate.burst
        tokens, then = bucket
        return min(self.rate.burst, tokens + (now - then) * self.rate.per_second)

    def _make_room(self, now: float) -> None:
        if now < self._next_sweep and len(self._buckets) < self.max_keys:
            return
        self._next_sweep = now + self.rate.refill_seconds
        full_since = now - self.rate.refill_seconds
        # A bucket last touched before full_since has refilled whatever it spent.
        idle = [k for k, (_, then) in self._buckets.items() if then <= full_since]
        for k in idle:
            del self._buckets[k]
        if len(self._buckets) >= self.max_keys:
            # A tenth at once, so that a full table is not swept again at every new key.
            excess = len(self._buckets) - self.max_keys + max(1, self.max_keys // 10)
            for k in list(self._buckets)[:excess]:  # oldest created first
                del self._buckets[k]


def take_all(
    charges: Sequence[tuple[TokenBuckets, Hashable]], cost: float, now: float | None = None
) -> float:
    """Spend ``cost`` in every (buckets, key) of ``charges`` when all of them have it,
    else nothing. Returns 0.0 when spent, or the seconds until all would have it."""
    now = charges[0][0].now() if now is None else now
    wait = max(buckets.wait(key, cost, now) for buckets, key in charges)
    if wait > 0:
        return wait
    for buckets, key in charges:
        buckets.take(key, cost, now)
    return 0.0


def retry_after_seconds(wait: float) -> int:
    """A ``Retry-After`` in whole seconds: rounded up, at least 1."""
    return max(1, math.ceil(wait))
