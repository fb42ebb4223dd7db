"""The responder's in-memory guards, without a broker: the per-kiosk request limit and
the receive time taken when a message is queued."""

from __future__ import annotations

import asyncio

import aiomqtt

from api.kiosk_responder import KioskRequestLimit, _stamping_queue


def test_each_kiosk_may_ask_five_times_a_second() -> None:
    limit = KioskRequestLimit(per_second=5, max_kiosks=3)
    assert [limit.allow("t", "k1", 0.1 * i) for i in range(6)] == [True] * 5 + [False]
    assert limit.allow("t", "k2", 0.5)  # another kiosk has its own budget
    assert limit.allow("t", "k1", 1.01)  # the oldest of the five is a second old
    # The table is swept of idle kiosks rather than growing.
    for i in range(10):
        assert limit.allow("t", f"other-{i}", 10.0 + i)
    assert len(limit._seen) <= 3


def test_the_receive_time_is_taken_when_the_message_is_queued() -> None:
    clock = [100.0]

    async def main() -> float:
        queue = _stamping_queue(lambda: clock[0])(maxsize=2)
        queue.put_nowait(aiomqtt.Message("a/b", b"x", 1, False, 1, None))
        clock[0] = 160.0  # a minute in the queue
        message = await queue.get()
        return float(message.received_at)  # type: ignore[attr-defined]

    assert asyncio.run(main()) == 100.0
