"""The outbox relay: publishes committed events to the broker, in seq order per
tenant, QoS 1, and marks them published only after the broker acknowledged them.

It wakes as soon as a transaction in this process commits events (no polling delay
on the hot path), and on PostgreSQL as soon as any process does (LISTEN/NOTIFY); it
polls at ``poll_interval`` as the fallback, and retries with capped, jittered backoff
while the broker is away. With several processes on one database, only the active
relay publishes (``hub.leader``); the others stand by. What was left unpublished by
a crash is simply still unpublished: it goes out on the next pass. A crash between
the broker's PUBACKs and the marks re-sends that batch, so delivery is at least once;
subscribers de-duplicate by event id.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import random
import ssl
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import aiomqtt
import anyio.to_thread
from paho.mqtt import client as mqtt_client
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from sqlalchemy.orm import Session, sessionmaker

from hub import metrics
from hub.db import utcnow
from hub.envelope import iso_utc
from hub.errors import BrokerUnavailableError, WriterClosedError
from hub.leader import Leadership, Role, Turn, leadership_for
from hub.mqtt import publish_properties
from hub.outbox import UnpublishedRow, add_commit_listener, remove_commit_listener
from hub.service import BackgroundService, wait_event
from hub.topics import meta_seq_topic

log = logging.getLogger("hub.relay")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RelayStatus:
    connected: bool
    published_total: int
    last_published_at: datetime | None
    last_error: str | None
    role: Role = "standby"  # "active": this relay publishes; "standby": another does
    connected_since: datetime | None = None
    leadership_error: str | None = None


class Relay(BackgroundService):
    """Publishes the outbox. Use as an async context manager; it owns its task."""

    _task_name = "hub-outbox-relay"

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        read_sessions: sessionmaker[Session] | None = None,
        host: str,
        port: int,
        username: str,
        password: str,
        batch_size: int = 200,
        poll_interval: float = 1.0,
        max_backoff: float = 5.0,
        ack_timeout: float = 30.0,
        leadership: Leadership | None = None,
        marker: Callable[[list[int], datetime], Future[Any]] | None = None,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        """``leadership``: how relays of several processes agree on one publisher;
        by default the one that fits the database behind ``sessions``. ``marker``:
        commits marks with this process's other writes (``EventWriter.submit_marks``);
        used where a pass is not a transaction of its own (not on PostgreSQL)."""
        super().__init__()
        self._sessions = sessions
        self._read_sessions = read_sessions or sessions
        self._host = host
        self._port = port
        self._tls_context = tls_context
        self._username = username
        self._password = password
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._max_backoff = max_backoff
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connected = False
        self._healthy = False  # connected and publishing: a later outage is a new one
        self._published_total = 0
        self._last_published_at: datetime | None = None
        self._last_error: str | None = None
        self._batch: _Batch | None = None  # the pass awaiting PUBACKs
        self._marker = marker
        # The previous pass's marks, handed to the writer and not awaited yet, and the
        # largest pk among them. At most one such batch exists at any time.
        self._mark_in_flight: asyncio.Future[Any] | None = None
        self._marked_up_to = 0
        self._ack_timeout = ack_timeout
        self._threads: anyio.CapacityLimiter | None = None  # made on the loop
        self._lost: str | None = None  # why the broker connection ended, once it did
        self._connected_since: datetime | None = None
        self._leadership = leadership or leadership_for(
            sessions=sessions, read_sessions=self._read_sessions, on_notify=self.wake
        )

    @property
    def status(self) -> RelayStatus:
        return RelayStatus(
            self._connected,
            self._published_total,
            self._last_published_at,
            self._last_error,
            role=self._leadership.role,
            connected_since=self._connected_since if self._connected else None,
            leadership_error=self._leadership.error,
        )

    @property
    def leading(self) -> bool:
        """True while this relay is the one that publishes."""
        return self._leadership.leading

    def wake(self) -> None:
        """Thread-safe: publish now (called after every commit that wrote events)."""
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self._wake.set)

    def _starting(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._threads = anyio.CapacityLimiter(2)
        add_commit_listener(self.wake)

    def _stopped(self) -> None:
        remove_commit_listener(self.wake)
        self._loop = None

    async def _run(self) -> None:
        async with self._leadership:
            await self._supervise()

    async def _supervise(self) -> None:
        delay = 0.1
        while True:
            error: str
            try:
                await self._connected_loop()
                continue  # not reached: the loop only ends by an exception
            except (aiomqtt.MqttError, BrokerUnavailableError) as exc:
                error = str(exc)
            except Exception as exc:  # the database is away, or a bug: never stop relaying
                log.exception("relay: unexpected error")
                error = repr(exc)
            if self._healthy:  # a new outage: back off from the start again
                delay = 0.1
            self._connected = False
            self._healthy = False
            self._last_error = error
            log.warning("relay: %s; retrying in about %.1fs", error, delay)
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, self._max_backoff)

    async def _connected_loop(self) -> None:
        client = aiomqtt.Client(
            self._host,
            self._port,
            username=self._username,
            password=self._password,
            identifier=f"hub-relay-{uuid.uuid4().hex[:12]}",
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=True,
            keepalive=15,
            timeout=10,
            tls_context=self._tls_context,
        )
        # A whole batch is in flight at once on purpose; don't warn about it.
        client.pending_calls_threshold = 2 * self._batch_size + 100
        async with client:
            self._lost = None
            self._watch(client)
            self._connected = True
            self._connected_since = utcnow()
            connected_at = asyncio.get_running_loop().time()
            log.info("relay connected to %s:%s", self._host, self._port)
            try:
                while True:
                    if self._lost is not None:
                        raise aiomqtt.MqttError(self._lost)
                    self._wake.clear()
                    # Only a relay that can publish asks to lead; the leader checks
                    # here that it still does.
                    rows: Sequence[UnpublishedRow] | None = None
                    if await self._leadership.refresh(eligible=True):
                        rows = await self._pass(client)  # None: another pass still runs
                    # Healthy once it published, or stayed up a while with nothing to do
                    # (or standing by); a broker that refuses the publishes is not.
                    idle_for = asyncio.get_running_loop().time() - connected_at
                    if not self._healthy and not rows and idle_for > 10:
                        self._healthy = True
                        self._last_error = None
                    if rows and len(rows) == self._batch_size:
                        continue
                    await wait_event(self._wake, self._poll_interval)
            finally:
                # Give leadership up: a relay that cannot publish must not keep the
                # others from it. (On cancellation, leaving the leadership ends it.)
                # Marks land before leadership goes: the next leader must not read
                # this relay's published rows as unpublished.
                await self._settle_marks()
                await self._leadership.refresh(eligible=False)

    async def _pass(self, client: aiomqtt.Client) -> Sequence[UnpublishedRow] | None:
        """Fetch, publish, await the PUBACKs, mark: all within one turn."""
        if self._leadership.blocking_begin:
            return await self._locked_pass(client)
        turn = self._leadership.begin()
        if turn is None:
            return None
        handed_off = self._marker is not None
        try:
            # The previous pass's marks may still be on their way to the writer's next
            # commit: read past them, then wait for them before publishing anything.
            # At most one published batch is ever unmarked, as when passes marked
            # synchronously, so a re-publish (after a failed mark, a kill -9 or a new
            # leader) never sends an older meta/seq or snapshot after a newer one.
            # Skipping by pk is safe on SQLite only: its writers are serialised, so
            # pks are taken in commit order.
            after = self._marked_up_to if self._mark_in_flight is not None else 0
            started = time.perf_counter()
            rows = await self._in_thread(self._fetch, turn, after)
            if after and not await self._settle_marks():
                rows = await self._in_thread(self._fetch, turn, 0)  # publish them again
            fetched_at = utcnow()
            if rows:
                await self._publish(client, rows)
                at = utcnow()
                pks = [r.pk for r in rows]
                if not (handed_off and self._hand_off(pks, at)):
                    await self._in_thread(turn.mark, pks, at)
                self._published(rows, fetched_at, at, started)
            return rows
        finally:
            turn.close()

    async def _locked_pass(self, client: aiomqtt.Client) -> Sequence[UnpublishedRow] | None:
        """A pass whose turn is a database transaction (PostgreSQL): begin and fetch in
        one trip to a thread, mark, commit and close in another."""

        def begin_and_fetch() -> tuple[Turn | None, Sequence[UnpublishedRow]]:
            turn = self._leadership.begin()
            if turn is None:
                return None, ()
            try:
                return turn, self._fetch(turn, 0)
            except BaseException:
                turn.close()
                raise

        def mark_and_close(turn: Turn, pks: list[int] | None, at: datetime) -> None:
            try:
                if pks:
                    turn.mark(pks, at)
            finally:
                turn.close()

        started = time.perf_counter()
        turn, rows = await self._in_thread(begin_and_fetch)
        if turn is None:
            return None
        pks: list[int] | None = None
        fetched_at = at = utcnow()
        try:
            if rows:
                await self._publish(client, rows)
                at = utcnow()
                pks = [r.pk for r in rows]
        finally:
            # Marks only what was acknowledged; on a failure just closes (rolls back).
            await self._in_thread(mark_and_close, turn, pks, at)
        if rows:
            self._published(rows, fetched_at, at, started)
        return rows

    def _published(
        self, rows: Sequence[UnpublishedRow], fetched_at: datetime, at: datetime, started: float
    ) -> None:
        """A batch is acknowledged (``at``) and marked: count, measure and log it."""
        self._published_total += len(rows)
        self._last_published_at = at
        self._healthy = True
        self._last_error = None
        oldest = min((r.occurred_at for r in rows if r.occurred_at is not None), default=None)
        lag = max(0.0, (fetched_at - oldest).total_seconds()) if oldest is not None else 0.0
        events = [r for r in rows if r.seq is not None]
        metrics.relay_batches.inc()
        metrics.relay_lag.observe(lag)
        metrics.count_published(r.type for r in events)
        observe = metrics.publish_latency.observe
        for r in events:
            if r.occurred_at is not None:
                observe(max(0.0, (at - r.occurred_at).total_seconds()))
        log.info(
            "relay published a batch",
            extra={
                "count": len(rows),
                "events": len(events),
                "durationMs": round((time.perf_counter() - started) * 1000, 3),
                "lagMs": round(lag * 1000, 3),
            },
        )

    def _hand_off(self, pks: list[int], at: datetime) -> bool:
        """Give the marks to the writer's next transaction; the next pass awaits them.
        False if the writer has stopped (the turn then marks on its own)."""
        assert self._marker is not None
        try:
            self._mark_in_flight = asyncio.wrap_future(self._marker(pks, at))
        except WriterClosedError:
            return False
        self._marked_up_to = pks[-1]
        return True

    async def _settle_marks(self) -> bool:
        """Wait for the marks in flight; False if they failed (their rows are still
        unpublished: the caller reads from pk 0 again)."""
        pending, self._mark_in_flight = self._mark_in_flight, None
        self._marked_up_to = 0
        if pending is None:
            return True
        try:
            # Shielded: a cancelled relay must not cancel (and so drop) the mark. Bounded:
            # a stuck writer must not hold the relay, and its leadership, forever; a
            # mark that lands late is harmless, nothing newer went out meanwhile.
            await asyncio.wait_for(asyncio.shield(pending), self._ack_timeout)
        except Exception as exc:  # TimeoutError included
            log.warning("relay: marking a batch failed (%r); publishing it again", exc)
            return False
        return True

    async def _in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn`` on the relay's own threads: HTTP requests use anyio's default
        pool, and a burst of them must not hold publishing back. Cancelling waits for
        the call to finish, so a turn is never closed while its mark still runs on
        the same session."""
        call = asyncio.ensure_future(
            anyio.to_thread.run_sync(functools.partial(fn, *args), limiter=self._threads)
        )
        try:
            return await asyncio.shield(call)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await call
            raise

    def _watch(self, client: aiomqtt.Client) -> None:
        """Count the batch's PUBACKs and record refusals (reason >= 0x80), so a batch
        the broker refused is not marked published. And note a lost
        connection at once, even while idle: a relay that cannot publish must stand
        by without waiting for its next publish to fail."""
        paho = client._client  # noqa: SLF001 - aiomqtt exposes no PUBACK reason code
        inner_publish: Any = paho.on_publish
        inner_disconnect: Any = paho.on_disconnect

        def on_publish(c: Any, userdata: Any, mid: int, reason: ReasonCode, props: Any) -> None:
            self._acknowledged(mid, reason)
            if inner_publish is not None:
                inner_publish(c, userdata, mid, reason, props)

        def on_disconnect(c: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
            self._lost = f"disconnected by the broker: {reason}"
            self._connection_lost(self._lost)
            self._wake.set()
            if inner_disconnect is not None:
                inner_disconnect(c, userdata, flags, reason, props)

        paho.on_publish = on_publish
        paho.on_disconnect = on_disconnect

    def _fetch(self, turn: Turn, after: int) -> Sequence[UnpublishedRow]:
        return turn.fetch(self._batch_size, after)

    async def _publish(self, client: aiomqtt.Client, rows: Sequence[UnpublishedRow]) -> None:
        """Hand the whole batch to paho in order, then await every PUBACK. One
        connection delivers QoS 1 messages in the order they were sent.

        Straight to paho rather than through aiomqtt's ``publish``: that one checks each
        new message id against every pending one (quadratic in the batch) and costs an
        event and a timer per message; here one future waits for the whole batch."""
        paho = client._client  # noqa: SLF001
        batch = _Batch(asyncio.get_running_loop().create_future())
        self._batch = batch
        try:
            for topic, payload, retain, props in self._messages(rows):
                info = paho.publish(topic, payload, 1, retain, props)
                if info.rc != mqtt_client.MQTT_ERR_SUCCESS:
                    raise aiomqtt.MqttError(
                        f"could not publish: {mqtt_client.error_string(info.rc)}"
                    )
                # No PUBACK can be handled before this loop ends: paho reads them only
                # when the event loop, which this loop holds, calls its loop_read.
                batch.waiting.add(info.mid)
            if batch.waiting:
                try:
                    async with asyncio.timeout(self._ack_timeout):
                        await batch.done
                except TimeoutError:
                    raise BrokerUnavailableError(
                        f"{len(batch.waiting)} PUBACKs missing after {self._ack_timeout:.0f}s"
                    ) from None
        finally:
            self._batch = None
        if batch.refused:
            codes = ", ".join(str(c) for c in batch.refused)
            raise BrokerUnavailableError(f"broker refused publishes: {codes}")

    def _acknowledged(self, mid: int, reason: ReasonCode) -> None:
        """paho's on_publish (on the event loop: aiomqtt drives paho's socket)."""
        batch = self._batch
        if batch is None:
            return
        if reason.is_failure:
            batch.refused.append(reason)
        if mid in batch.waiting:
            batch.waiting.discard(mid)
            if not batch.waiting and not batch.done.done():
                batch.done.set_result(None)

    def _connection_lost(self, why: str) -> None:
        batch = self._batch
        if batch is not None and not batch.done.done():
            batch.done.set_exception(aiomqtt.MqttError(why))

    def _messages(
        self, rows: Sequence[UnpublishedRow]
    ) -> Iterator[tuple[str, bytes, bool, Properties]]:
        """What to publish for ``rows``, in order: each event (and its retained
        snapshot), each plain message, then each tenant's newest seq (retained)."""
        now = utcnow()
        newest: dict[str, int] = {}
        for row in rows:
            if row.seq is not None:
                yield row.topic, row.payload.encode(), False, _JSON
                newest[row.tenant] = max(row.seq, newest.get(row.tenant, 0))
            elif row.snapshot_topic is None:  # a plain message: a user's notification
                yield row.topic, row.payload.encode(), False, _JSON
            if row.snapshot_topic is not None:
                remaining = (
                    int((row.snapshot_expires_at - now).total_seconds())
                    if row.snapshot_expires_at is not None
                    else 0
                )
                if row.snapshot_payload is not None and remaining > 0:
                    props = publish_properties(json_body=True, expiry=remaining)
                    yield row.snapshot_topic, row.snapshot_payload.encode(), True, props
                else:
                    # An empty retained message removes the snapshot.
                    yield row.snapshot_topic, b"", True, _EMPTY
        for tenant, seq in newest.items():
            body = json.dumps({"seq": seq, "at": iso_utc(now)}).encode()
            yield meta_seq_topic(tenant).value, body, True, _JSON


@dataclass(slots=True)
class _Batch:
    """The PUBACKs one relay pass waits for."""

    done: asyncio.Future[None]
    waiting: set[int] = field(default_factory=set)
    refused: list[ReasonCode] = field(default_factory=list)


# paho only reads these; one of each serves every message.
_JSON = publish_properties(json_body=True)
_EMPTY = publish_properties(json_body=False)
