"""Retry delays (hub_client.backoff)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from hub_client import Backoff
from hub_client.backoff import MAX_RETRY_AFTER, parse_retry_after


@pytest.mark.parametrize("attempt", [0, 1, 2, 5, 10, 100, 10_000])
def test_delays_stay_between_half_and_all_of_the_ceiling(attempt: int) -> None:
    backoff = Backoff(initial=0.5, maximum=30.0)
    ceiling = min(30.0, 0.5 * 2 ** min(attempt, 64))
    for _ in range(200):
        assert ceiling / 2 <= backoff.delay(attempt) <= ceiling


def test_the_ceiling_grows_then_stops_at_the_maximum() -> None:
    backoff = Backoff(initial=1.0, maximum=8.0)
    assert [backoff.ceiling(a) for a in range(6)] == [1, 2, 4, 8, 8, 8]


def test_retry_after_is_a_lower_bound_with_jitter_after_it() -> None:
    backoff = Backoff(initial=0.5, maximum=2.0)
    delays = [backoff.delay(0, retry_after=8.0) for _ in range(200)]
    assert all(8.0 <= d <= 10.0 for d in delays)  # a quarter of 8 s at most
    assert len(set(delays)) > 1  # not all at once
    short = [backoff.delay(0, retry_after=0.0) for _ in range(200)]
    assert all(0.0 <= d <= 0.5 for d in short)  # half of the first backoff at most
    # A longer backoff of ours still wins over a short Retry-After.
    assert all(backoff.delay(10, retry_after=1.0) >= 1.0 for _ in range(50))


def test_backoff_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="initial"):
        Backoff(initial=0)
    with pytest.raises(ValueError, match="initial"):
        Backoff(initial=5, maximum=1)
    with pytest.raises(ValueError, match="factor"):
        Backoff(factor=0.5)


def test_retry_after_in_seconds_or_as_a_date() -> None:
    now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=20), usegmt=True), now=now)
    assert parse_retry_after(
        format_datetime(now + timedelta(seconds=20), usegmt=True), now=now
    ) == pytest.approx(20.0)
    assert parse_retry_after(format_datetime(now - timedelta(seconds=5), usegmt=True), now=now) == 0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("86400") == MAX_RETRY_AFTER
