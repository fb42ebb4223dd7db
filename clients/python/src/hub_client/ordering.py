"""Which events to hand to the partner, and in which order: the in-memory half of the
watermark, the recent ids, and the bounded buffer of live events held during replay."""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable

from hub_client.envelope import Event


class RecentIds:
    """The last ``limit`` event ids, oldest forgotten first."""

    def __init__(self, limit: int, ids: Iterable[str] = ()) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self._limit = limit
        self._ids: OrderedDict[str, None] = OrderedDict()
        for event_id in ids:
            self.add(event_id)

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, event_id: str) -> None:
        self._ids[event_id] = None
        self._ids.move_to_end(event_id)
        while len(self._ids) > self._limit:
            self._ids.popitem(last=False)

    def discard(self, event_ids: Iterable[str]) -> None:
        for event_id in event_ids:
            self._ids.pop(event_id, None)


class Sequencer:
    """Hands out each event once, in seq order.

    ``position`` is the highest seq handed out (or known to hold nothing for this
    partner); anything at or below it, or with an id handed out before, is a duplicate.
    Live events wait in a buffer of at most ``max_buffer`` events while a replay runs;
    when it would overflow, the buffer is emptied and ``overflowed`` is set: the caller
    then replays again from ``position``, which covers every dropped event.
    """

    def __init__(self, *, position: int, recent: RecentIds, max_buffer: int) -> None:
        if position < 0:
            raise ValueError("position must not be negative")
        if max_buffer < 1:
            raise ValueError("max_buffer must be at least 1")
        self.position = position
        self.recent = recent
        self.max_buffer = max_buffer
        self.overflowed = False
        self._live: deque[Event] = deque()

    def is_new(self, event: Event) -> bool:
        return bool(event["seq"] > self.position and event["id"] not in self.recent)

    def mark(self, event: Event) -> None:
        """``event`` is handed out: nothing at or below its seq is new any more."""
        self.position = max(self.position, event["seq"])
        self.recent.add(event["id"])

    def skip_to(self, seq: int) -> None:
        """Nothing for this partner exists at or below ``seq`` that was not handed out."""
        self.position = max(self.position, seq)

    @property
    def buffered(self) -> int:
        return len(self._live)

    def offer(self, event: Event) -> bool:
        """Buffer a live event. False when the buffer overflowed (and was emptied)."""
        if not self.is_new(event):
            return True
        if len(self._live) >= self.max_buffer:
            self._live.clear()
            self.overflowed = True
            return False
        self._live.append(event)
        return True

    def handover(self) -> None:
        """A replay caught up: order what arrived meanwhile by seq (the relay publishes
        in order, but a queued session and new deliveries may interleave)."""
        if self._live:
            self._live = deque(sorted(self._live, key=lambda e: int(e["seq"])))

    def take(self) -> Event | None:
        """The next live event that is new, or None."""
        while self._live:
            event = self._live.popleft()
            if self.is_new(event):
                return event
        return None
