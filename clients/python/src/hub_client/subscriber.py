"""HubSubscriber: a partner's events, each once, in seq order, across reconnects,
credential renewals and restarts.

One background task owns the MQTT connection: it takes credentials, connects (MQTT 5,
TCP, the issued client id, clean start false, a session expiry), subscribes to every
granted filter, and moves arriving events into a bounded buffer. It renews the
credentials before they expire and reconnects with them on the same client id, so the
broker's persistent session carries over. The partner's ``async for`` does the rest in
its own task: after every (re)connect it replays ``GET /events`` from the watermark
page by page, then hands over to the buffered live events, dropping anything at or
below the watermark or with an id seen before.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from collections import deque
from types import TracebackType
from typing import Self

import aiomqtt
import httpx
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from hub_client.backoff import Backoff
from hub_client.credentials import Credentials, RetryLater, fetch_credentials
from hub_client.envelope import Event, MalformedEvent, parse_payload
from hub_client.errors import HubClientError, PartnerRefusedError
from hub_client.ordering import RecentIds, Sequencer
from hub_client.replay import Page, TokenExpired, fetch_page
from hub_client.store import SqliteStore

log = logging.getLogger("hub_client")

# CONNACK reason codes that mean "these credentials are refused" (MQTT 5): bad user name
# or password, not authorised. The token expired or was revoked: take new ones.
_REFUSED_LOGIN = frozenset({0x86, 0x87})
# A connection that lasted this long resets the reconnect backoff.
_STABLE_SECONDS = 30.0


def _reason_code(rc: object) -> int | None:
    if isinstance(rc, ReasonCode):
        return int(rc.value)
    return rc if isinstance(rc, int) else None


class HubSubscriber:
    """The partner's events as an async iterator of envelopes (dicts)::

        async with HubSubscriber(api_url, secret, store="partner.db") as events:
            async for event in events:
                handle(event)

    An event's seq becomes the store's watermark when the body has handled it: when
    the loop asks for the next event, or when the ``async with`` ends without an
    exception. Single use: enter it once.
    """

    def __init__(
        self,
        api_url: str,
        secret: str,
        *,
        store: str | os.PathLike[str] | SqliteStore = "partner.db",
        after: int | None = None,
        session_expiry: int = 6 * 3600,
        page_size: int = 1000,
        max_buffer: int = 10_000,
        renew_fraction: float = 0.75,
        timeout: float = 10.0,
        backoff: Backoff | None = None,
        mqtt_url: str | None = None,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        if not api_url.startswith(("http://", "https://")):
            raise ValueError("api_url must be an http:// or https:// URL")
        if not secret:
            raise ValueError("secret must not be empty")
        if after is not None and after < 0:
            raise ValueError("after must not be negative")
        if session_expiry < 1:
            raise ValueError("session_expiry must be at least 1 second")
        if page_size < 1 or max_buffer < 1:
            raise ValueError("page_size and max_buffer must be at least 1")
        if not 0 < renew_fraction < 1:
            raise ValueError("renew_fraction must be between 0 and 1")
        self._api = api_url.rstrip("/")
        self._secret = secret
        self._store_arg = store
        self._after = after
        self._session_expiry = session_expiry
        self._page_size = page_size
        self._max_buffer = max_buffer
        self._renew_fraction = renew_fraction
        self._timeout = timeout
        self._backoff = backoff or Backoff()
        self._mqtt_url = mqtt_url
        # For https:// and mqtts://: the system's trusted CAs unless given (a private CA).
        self._tls_context = tls_context

        self._entered = False
        self._store: SqliteStore | None = None
        self._http: httpx.AsyncClient | None = None
        self._gate: Sequencer | None = None
        self._task: asyncio.Task[None] | None = None
        self._creds: Credentials | None = None
        self._creds_due = 0.0  # loop time at which renewal is due
        self._creds_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._fatal: BaseException | None = None
        self._generation = 0  # connections subscribed so far
        self._replayed = 0  # the connection the last replay started after
        self._replay_cursor: int | None = None  # a replay in progress: the next "after"
        self._replay_events: deque[Event] = deque()
        self._pending: Event | None = None  # handed out, not yet committed
        self._in_next = False
        self._up_since: float | None = None

    # -- public surface -------------------------------------------------------------

    @property
    def store(self) -> SqliteStore:
        """The durable store. Inside the loop body, writes through
        ``store.connection`` commit together with the event's watermark."""
        if self._store is None:
            raise RuntimeError("the subscriber is not running")
        return self._store

    @property
    def credentials(self) -> Credentials | None:
        """The current credentials (tenant, client id, filters, expiry)."""
        return self._creds

    @property
    def position(self) -> int:
        """The highest seq handed out so far (committed or about to be)."""
        return self._gate.position if self._gate is not None else 0

    async def __aenter__(self) -> Self:
        if self._entered:
            raise RuntimeError("HubSubscriber is single use and not re-entrant")
        self._entered = True
        try:
            if isinstance(self._store_arg, SqliteStore):
                self._store = self._store_arg
            else:
                self._store = SqliteStore(self._store_arg)
            if self._after is not None:
                self._store.reset(self._after)
            self._gate = Sequencer(
                position=self._store.watermark,
                recent=RecentIds(self._store.max_ids, self._store.recent_ids()),
                max_buffer=self._max_buffer,
            )
            self._http = httpx.AsyncClient(timeout=self._timeout, verify=self._tls_context or True)
            # Fail fast, before the body runs, when the secret is refused.
            self._creds = await self._fetch_credentials()
            self._task = asyncio.create_task(self._maintain(), name="hub-client-connection")
        except BaseException:
            await self._close(commit=False)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._close(commit=exc_type is None)

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Event:
        if self._task is None:
            raise RuntimeError("iterate inside 'async with HubSubscriber(...)'")
        if self._in_next:
            raise RuntimeError("one consumer at a time")
        self._in_next = True
        try:
            self._commit_pending()
            return await self._next()
        finally:
            self._in_next = False

    # -- the consumer's side --------------------------------------------------------

    def _commit_pending(self) -> None:
        event, self._pending = self._pending, None
        if event is not None:
            self.store.commit_event(event["id"], event["seq"])

    def _hand_out(self, event: Event) -> Event:
        assert self._gate is not None
        self._gate.mark(event)
        self.store.begin()
        self._pending = event
        return event

    async def _next(self) -> Event:
        gate = self._gate
        assert gate is not None
        while True:
            if self._fatal is not None:
                raise self._fatal
            if self._replay_events:
                replayed = self._replay_events.popleft()
                if gate.is_new(replayed):
                    return self._hand_out(replayed)
                continue
            if self._replay_cursor is not None:
                await self._replay_step(self._replay_cursor)
                continue
            if gate.overflowed or self._generation != self._replayed:
                if gate.overflowed:
                    log.warning(
                        "more than %d live events waited; replaying from seq %d instead",
                        gate.max_buffer,
                        gate.position,
                    )
                gate.overflowed = False
                self._replayed = self._generation
                self._replay_cursor = gate.position
                continue
            event = gate.take()
            if event is not None:
                return self._hand_out(event)
            self._wake.clear()
            await self._wake.wait()

    async def _replay_step(self, after: int) -> None:
        gate = self._gate
        assert gate is not None
        page = await self._page(after)
        if page.events:
            self._replay_events.extend(page.events)
            self._replay_cursor = int(page.events[-1]["seq"])
            return
        self._replay_cursor = None
        if page.latest_seq > gate.position:
            # Nothing granted up to latestSeq is missing: remember that, so a partner
            # whose events are rare never falls behind what replay keeps.
            self.store.advance(page.latest_seq)
            gate.skip_to(page.latest_seq)
        gate.handover()

    async def _page(self, after: int) -> Page:
        assert self._http is not None
        attempt = 0
        renewed = False
        while True:
            if self._fatal is not None:
                raise self._fatal
            creds = await self._current_credentials()
            try:
                return await fetch_page(
                    self._http,
                    self._api,
                    creds.access_token,
                    after=after,
                    limit=self._page_size,
                    tenant=creds.tenant,
                )
            except TokenExpired as exc:
                if renewed:
                    raise PartnerRefusedError(
                        f"replay refused with new credentials: {exc}"
                    ) from None
                await self._renew(creds)
                renewed = True
            except RetryLater as exc:
                delay = self._backoff.delay(attempt, retry_after=exc.retry_after)
                attempt += 1
                log.warning("%s; retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)

    # -- credentials ------------------------------------------------------------------

    async def _fetch_credentials(self) -> Credentials:
        assert self._http is not None
        attempt = 0
        while True:
            try:
                creds = await fetch_credentials(
                    self._http, self._api, self._secret, mqtt_url=self._mqtt_url
                )
            except RetryLater as exc:
                delay = self._backoff.delay(attempt, retry_after=exc.retry_after)
                attempt += 1
                log.warning("%s; retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                continue
            loop = asyncio.get_running_loop()
            self._creds_due = loop.time() + creds.renew_after(self._renew_fraction)
            return creds

    async def _current_credentials(self) -> Credentials:
        """The credentials, renewed first when renewal is due."""
        creds = self._creds
        assert creds is not None
        if asyncio.get_running_loop().time() >= self._creds_due:
            return await self._renew(creds)
        return creds

    async def _renew(self, stale: Credentials) -> Credentials:
        """New credentials unless someone already replaced ``stale``."""
        async with self._creds_lock:
            if self._creds is stale:
                self._creds = await self._fetch_credentials()
                log.info("credentials renewed; they expire at %s", self._creds.expires_at)
            assert self._creds is not None
            return self._creds

    # -- the connection task ----------------------------------------------------------

    async def _maintain(self) -> None:
        loop = asyncio.get_running_loop()
        attempt = 0
        while True:
            creds: Credentials | None = None
            try:
                creds = await self._current_credentials()
                await self._connect_once(creds)
                attempt = 0  # renewed: reconnect at once
                continue
            except aiomqtt.MqttError as exc:
                if isinstance(exc, aiomqtt.MqttCodeError) and (
                    _reason_code(exc.rc) in _REFUSED_LOGIN
                ):
                    # The broker refused the token (expired, revoked): renew first.
                    self._creds_due = 0.0
                if self._up_since is not None and loop.time() - self._up_since > _STABLE_SECONDS:
                    attempt = 0
                self._up_since = None
                delay = self._backoff.delay(attempt)
                attempt += 1
                log.warning("broker connection lost (%s); reconnecting in %.1f s", exc, delay)
                await asyncio.sleep(delay)
            except HubClientError as exc:
                self._stop_with(exc)
                return
            except Exception as exc:
                log.exception("the connection task failed")
                self._stop_with(HubClientError(f"the connection task failed: {exc!r}"))
                return

    def _stop_with(self, exc: BaseException) -> None:
        self._fatal = exc
        self._wake.set()

    async def _connect_once(self, creds: Credentials) -> None:
        """Connect, subscribe and read until renewal is due; then renew and return (the
        caller reconnects). Raises MqttError when the connection fails or is lost."""
        loop = asyncio.get_running_loop()
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self._session_expiry
        client = aiomqtt.Client(
            creds.mqtt_host,
            creds.mqtt_port,
            username=creds.username,
            password=creds.password,
            identifier=creds.client_id,
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=False,
            properties=props,
            timeout=self._timeout,
            keepalive=30,
            tls_context=(self._tls_context or ssl.create_default_context())
            if creds.mqtt_tls
            else None,
        )
        async with client:
            await self._subscribe(client, creds)
            self._up_since = loop.time()
            self._generation += 1
            self._wake.set()
            log.info("connected to %s:%d as %s", creds.mqtt_host, creds.mqtt_port, creds.client_id)
            reader = asyncio.create_task(self._read(client, creds), name="hub-client-reader")
            try:
                done, _ = await asyncio.wait({reader}, timeout=self._creds_due - loop.time())
                if reader in done:
                    reader.result()
                    raise aiomqtt.MqttError("the message stream ended")
                # Renewal is due. The broker cannot take a new password on a live
                # connection: fetch new credentials while still reading, then reconnect.
                await self._renew(creds)
            finally:
                reader.cancel()
                await asyncio.wait({reader})

    async def _subscribe(self, client: aiomqtt.Client, creds: Credentials) -> None:
        codes = await client.subscribe([(f, 1) for f in creds.filters])
        for topic, rc in zip(creds.filters, codes, strict=False):
            code = _reason_code(rc)
            if code is not None and code >= 0x80:
                # Fatal: live events of the other filters would move the watermark past
                # this filter's events, which would then never come.
                raise HubClientError(
                    f"the broker refused the granted subscription {topic} (reason 0x{code:02x})"
                )

    async def _read(self, client: aiomqtt.Client, creds: Credentials) -> None:
        gate = self._gate
        assert gate is not None
        async for message in client.messages:
            payload = message.payload
            if not isinstance(payload, bytes | bytearray | str):
                log.warning("skipping a message on %s: no payload", message.topic)
                continue
            try:
                event = parse_payload(payload, tenant=creds.tenant)
            except MalformedEvent as exc:
                log.warning("skipping a malformed message on %s: %s", message.topic, exc)
                continue
            gate.offer(event)
            self._wake.set()

    # -- shutdown ---------------------------------------------------------------------

    async def _close(self, *, commit: bool) -> None:
        task, self._task = self._task, None
        if task is not None:
            # Cancel until it ends: a task may absorb one cancellation in library code.
            while not task.done():
                task.cancel()
                await asyncio.wait({task}, timeout=1.0)
        try:
            if self._store is not None:
                if commit:
                    self._commit_pending()
                else:
                    self._pending = None
                    self._store.rollback()
        finally:
            self._pending = None
            if self._http is not None:
                await self._http.aclose()
            if self._store is not None and self._store is not self._store_arg:
                self._store.close()
