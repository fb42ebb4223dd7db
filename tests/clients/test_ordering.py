"""Ordering, de-duplication and the live buffer (hub_client.ordering)."""

from __future__ import annotations

import pytest

from hub_client.ordering import RecentIds, Sequencer


def ev(seq: int, event_id: str | None = None) -> dict[str, object]:
    return {"id": event_id or f"e-{seq}", "seq": seq, "type": "claim:paid", "tenant": "acme"}


def gate(position: int = 0, *, max_buffer: int = 100, ids: list[str] | None = None) -> Sequencer:
    return Sequencer(position=position, recent=RecentIds(1000, ids or []), max_buffer=max_buffer)


def test_recent_ids_forget_the_oldest_beyond_the_limit() -> None:
    recent = RecentIds(3, ["a", "b", "c"])
    recent.add("d")
    assert "a" not in recent
    assert all(i in recent for i in "bcd")
    assert len(recent) == 3


def test_recent_ids_refresh_an_id_seen_again() -> None:
    recent = RecentIds(2, ["a", "b"])
    recent.add("a")
    recent.add("c")
    assert "a" in recent
    assert "b" not in recent


def test_events_at_or_below_the_position_or_with_a_seen_id_are_not_new() -> None:
    g = gate(10, ids=["dup"])
    assert not g.is_new(ev(10))
    assert not g.is_new(ev(9))
    assert not g.is_new(ev(11, "dup"))
    assert g.is_new(ev(11))


def test_marking_an_event_moves_the_position_and_remembers_the_id() -> None:
    g = gate(0)
    g.mark(ev(5))
    assert g.position == 5
    assert not g.is_new(ev(7, "e-5"))
    g.skip_to(3)
    assert g.position == 5
    g.skip_to(9)
    assert g.position == 9


def test_live_events_held_during_replay_come_out_in_seq_order_without_duplicates() -> None:
    g = gate(0)
    # Arrived while the replay ran: a queued session and new deliveries interleaved,
    # one of them twice.
    for seq in (7, 5, 9, 5, 6):
        g.offer(ev(seq))
    # The replay handed out 1..6.
    for seq in range(1, 7):
        g.mark(ev(seq))
    g.handover()
    out = []
    while (e := g.take()) is not None:
        g.mark(e)
        out.append(e["seq"])
    assert out == [7, 9]


def test_a_live_event_already_handed_out_is_not_buffered() -> None:
    g = gate(10)
    assert g.offer(ev(10))
    assert g.offer(ev(3))
    assert g.buffered == 0


def test_an_overflowing_buffer_is_emptied_and_says_so() -> None:
    g = gate(0, max_buffer=3)
    assert all(g.offer(ev(s)) for s in (1, 2, 3))
    assert not g.offer(ev(4))
    assert g.overflowed
    assert g.buffered == 0
    assert g.take() is None
    # It keeps buffering what comes after; the replay covers what was dropped.
    assert g.offer(ev(5))
    assert g.buffered == 1


def test_sequencer_refuses_nonsense_bounds() -> None:
    with pytest.raises(ValueError, match="max_buffer"):
        gate(max_buffer=0)
    with pytest.raises(ValueError, match="position"):
        gate(-1)
    with pytest.raises(ValueError, match="limit"):
        RecentIds(0)
