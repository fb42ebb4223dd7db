"""Token buckets (hub/ratelimit.py) on a clock the tests move by hand."""

from __future__ import annotations

import pytest

from hub.ratelimit import Rate, TokenBuckets, retry_after_seconds, take_all


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def buckets(
    burst: float = 3, per_second: float = 1, max_keys: int = 100
) -> tuple[TokenBuckets, Clock]:
    clock = Clock()
    return TokenBuckets(Rate(burst, per_second), max_keys=max_keys, clock=clock), clock


def spend(b: TokenBuckets, key: str, cost: float = 1) -> float:
    return take_all([(b, key)], cost)


def test_a_burst_then_the_refill_rate() -> None:
    b, clock = buckets(burst=3, per_second=0.5)
    assert [spend(b, "a") for _ in range(3)] == [0, 0, 0]
    assert spend(b, "a") == pytest.approx(2.0)  # one token at 0.5 a second
    assert spend(b, "b") == 0  # another key has its own bucket
    clock.now += 2
    assert spend(b, "a") == 0
    assert spend(b, "a") == pytest.approx(2.0)
    clock.now += 100
    assert [spend(b, "a") for _ in range(4)][:3] == [0, 0, 0]  # never more than the burst


def test_a_refused_request_takes_nothing() -> None:
    b, clock = buckets(burst=2, per_second=1)
    spend(b, "a", 2)
    for _ in range(5):
        assert spend(b, "a") > 0
    clock.now += 1
    assert spend(b, "a") == 0


def test_a_cost_above_the_burst_passes_a_full_bucket_and_is_paid_back() -> None:
    b, clock = buckets(burst=10, per_second=1)
    assert spend(b, "a", 25) == 0
    assert spend(b, "a") == pytest.approx(16.0)  # from -15 up to 1
    clock.now += 16
    assert spend(b, "a") == 0


def test_take_all_spends_in_every_bucket_or_in_none() -> None:
    users, clock = buckets(burst=5, per_second=1)
    tenants = TokenBuckets(Rate(3, 1), clock=clock)
    assert take_all([(users, "u-1"), (tenants, "t")], 2) == 0
    assert take_all([(users, "u-2"), (tenants, "t")], 2) == pytest.approx(1.0)  # tenant short
    assert users.wait("u-2", 5) == 0  # the refusal took nothing from the user
    assert take_all([(users, "u-2"), (tenants, "t")], 1) == 0


def test_idle_buckets_are_forgotten_and_memory_is_bounded() -> None:
    b, clock = buckets(burst=2, per_second=1, max_keys=100)
    for n in range(50):
        spend(b, f"k-{n}")
    assert len(b) == 50
    clock.now += 2  # every bucket is full again: a new key sweeps them
    spend(b, "new")
    assert len(b) == 1
    for n in range(500):
        spend(b, f"m-{n}")
    assert len(b) <= 100


def test_retry_after_is_whole_seconds_at_least_one() -> None:
    assert retry_after_seconds(0.01) == 1
    assert retry_after_seconds(1.0) == 1
    assert retry_after_seconds(1.2) == 2


def test_a_rate_needs_a_burst_and_a_refill() -> None:
    with pytest.raises(ValueError, match="burst >= 1"):
        Rate(0, 1)
    with pytest.raises(ValueError, match="burst >= 1"):
        Rate(1, 0)
