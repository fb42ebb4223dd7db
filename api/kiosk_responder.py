"""The kiosk responder: answers kiosks' check-in requests over MQTT 5 request/response.

Every api process runs one. They share the requests through one shared subscription
(``$share/hub-kiosk/tenants/+/kiosks/+/requests``), so the broker hands each request to
one of them; the answer row's key (kiosk, correlation data) keeps a request that is
delivered twice (a redelivery after a crash) from being answered differently or checking
anyone in twice. The answer goes to the request's response topic, only when that is the
kiosk's own, with its correlation data.

Before any database work, a flood is cut short: the client's incoming queue is bounded
(``MAX_QUEUED_MESSAGES``; more are dropped), a payload over 4 KiB is dropped unanswered,
and each kiosk may ask ``KIOSK_REQUESTS_PER_SECOND`` times a second in this process
(more are answered ``rate_limited``, and nothing is stored). A request's expiry counts
from when the client received it, not from when it was dequeued.

Logs name kiosks and outcomes, never what a patient typed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import ssl
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiomqtt
import anyio.to_thread
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from sqlalchemy.orm import Session, sessionmaker

from api.domain import kiosks
from api.domain.appointments import Clinic
from hub import metrics
from hub.mosquitto import KIOSK_SHARE_GROUP
from hub.service import BackgroundService
from hub.topics import KIOSK_REQUESTS_FILTER, kiosk_responses_topic, validate_id, validate_tenant

log = logging.getLogger("api.kiosk_responder")

SUBSCRIPTION = f"$share/{KIOSK_SHARE_GROUP}/{KIOSK_REQUESTS_FILTER}"
ANSWER_EXPIRY_SECONDS = 60
MAX_QUEUED_MESSAGES = 1000
KIOSK_REQUESTS_PER_SECOND = 5
RATE_LIMITED: dict[str, Any] = {"ok": False, "reason": "rate_limited"}


class KioskRequestLimit:
    """At most ``per_second`` requests of each kiosk in any second, in memory. Only
    kiosks publish on their request topics, so the table is as large as the fleet; it
    is swept of idle kiosks when it grows past ``max_kiosks`` all the same."""

    def __init__(self, per_second: int = KIOSK_REQUESTS_PER_SECOND, max_kiosks: int = 10_000):
        self._per_second = per_second
        self._max_kiosks = max_kiosks
        self._seen: dict[tuple[str, str], deque[float]] = {}

    def allow(self, tenant: str, kiosk_id: str, now: float) -> bool:
        key = (tenant, kiosk_id)
        times = self._seen.get(key)
        if times is None:
            if len(self._seen) >= self._max_kiosks:
                self._seen = {k: q for k, q in self._seen.items() if q[-1] > now - 1.0}
            times = self._seen[key] = deque(maxlen=self._per_second)
        if len(times) == self._per_second and times[0] > now - 1.0:
            return False
        times.append(now)
        return True


def _stamping_queue(now: Callable[[], float]) -> type[asyncio.Queue[aiomqtt.Message]]:
    """An incoming queue that notes each message's receive time as it is queued (in
    the client's on-message callback), so that waiting in the queue counts against
    the request's expiry."""

    class StampingQueue(asyncio.Queue[aiomqtt.Message]):
        def put_nowait(self, item: aiomqtt.Message) -> None:
            item.received_at = now()  # type: ignore[attr-defined]
            super().put_nowait(item)

    return StampingQueue


@dataclass(frozen=True, slots=True)
class Request:
    tenant: str
    kiosk_id: str
    correlation: bytes
    payload: bytes
    deadline: float  # loop time after which the request has expired


def parse_envelope(
    topic: str, properties: Any, payload: bytes, received_at: float
) -> Request | None:
    """The request's addressing, or None when it deserves no answer at all: not a
    kiosk request topic, a response topic that is not the kiosk's own, correlation
    data missing or too long, or no message expiry (or more than 60 s)."""
    parts = topic.split("/")
    if len(parts) != 5 or parts[0] != "tenants" or parts[2] != "kiosks" or parts[4] != "requests":
        return None
    try:
        tenant, kiosk_id = validate_tenant(parts[1]), validate_id(parts[3])
    except ValueError:
        return None
    response_topic = getattr(properties, "ResponseTopic", None)
    correlation = getattr(properties, "CorrelationData", None)
    expiry = getattr(properties, "MessageExpiryInterval", None)
    if response_topic != kiosk_responses_topic(tenant, kiosk_id).value:
        return None
    if not isinstance(correlation, bytes | bytearray) or not correlation:
        return None
    if len(correlation) > kiosks.MAX_CORRELATION_BYTES:
        return None
    if not isinstance(expiry, int) or not 0 < expiry <= kiosks.MAX_EXPIRY_SECONDS:
        return None
    return Request(tenant, kiosk_id, bytes(correlation), payload, received_at + expiry)


class KioskResponder(BackgroundService):
    """Subscribes to every kiosk's requests (shared) and answers them. Starts once
    ``ready`` is set (the broker bootstrap gave the service account its ACLs)."""

    _task_name = "hub-kiosk-responder"

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        clinic: Clinic,
        host: str,
        port: int,
        username: str,
        password: str,
        window: kiosks.ArrivalWindow,
        limit: kiosks.RateLimit,
        ready: asyncio.Event | None = None,
        concurrency: int = 8,
        clock: Callable[[], float] | None = None,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__()
        self._tls_context = tls_context
        self._sessions = sessions
        self._clinic = clinic
        self._host = host
        self._port = port
        self._username = username
        self._password = password
        self._window = window
        self._limit = limit
        self._ready = ready
        self._concurrency = concurrency
        self._clock = clock
        self.connected = False
        self.answered = 0

    def _now(self) -> float:
        return self._clock() if self._clock else asyncio.get_running_loop().time()

    async def _run(self) -> None:
        if self._ready is not None:
            await self._ready.wait()
        delay = 0.2
        while True:
            try:
                await self._serve()
            except aiomqtt.MqttError as exc:
                log.warning("kiosk responder: %s; reconnecting", exc)
            except Exception:
                log.exception("kiosk responder: unexpected error; reconnecting")
            self.connected = False
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 5.0)

    async def _serve(self) -> None:
        client = aiomqtt.Client(
            self._host,
            self._port,
            username=self._username,
            password=self._password,
            identifier=f"hub-kiosk-{uuid.uuid4().hex[:12]}",
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=True,
            keepalive=15,
            timeout=10,
            max_queued_incoming_messages=MAX_QUEUED_MESSAGES,
            queue_type=_stamping_queue(self._now),
            tls_context=self._tls_context,
        )
        limit = KioskRequestLimit()
        slots = asyncio.Semaphore(self._concurrency)
        tasks: set[asyncio.Task[None]] = set()
        async with client:
            codes = await client.subscribe(SUBSCRIPTION, qos=1)
            if any(getattr(c, "is_failure", False) for c in codes or ()):
                raise aiomqtt.MqttError(f"the broker refused {SUBSCRIPTION}: {codes}")
            self.connected = True
            log.info("kiosk responder subscribed to %s", SUBSCRIPTION)
            try:
                async for message in client.messages:
                    payload = message.payload
                    if not isinstance(payload, bytes) or len(payload) > kiosks.MAX_REQUEST_BYTES:
                        continue  # dropped unanswered, before any database work
                    received = getattr(message, "received_at", None)
                    request = parse_envelope(
                        message.topic.value,
                        message.properties,
                        payload,
                        received if isinstance(received, float) else self._now(),
                    )
                    if request is None:
                        continue  # no answer: nowhere legitimate to send one
                    if not limit.allow(request.tenant, request.kiosk_id, self._now()):
                        # Answered without touching the database; nothing is stored.
                        await slots.acquire()
                        task = asyncio.create_task(
                            self._handle(client, request, slots, limited=True)
                        )
                        tasks.add(task)
                        task.add_done_callback(tasks.discard)
                        continue
                    await slots.acquire()
                    task = asyncio.create_task(self._handle(client, request, slots))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
            finally:
                for task in list(tasks):
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    async def _handle(
        self,
        client: aiomqtt.Client,
        request: Request,
        slots: asyncio.Semaphore,
        *,
        limited: bool = False,
    ) -> None:
        try:
            if self._now() > request.deadline:
                return
            answer = (
                kiosks.Answer(dict(RATE_LIMITED))
                if limited
                else await anyio.to_thread.run_sync(self._answer, request)
            )
            if answer is None or self._now() > request.deadline:
                # Unknown or disabled kiosk, or the request expired meanwhile. (A
                # check-in that committed stays committed; the kiosk asks again and
                # reads the same answer back.)
                return
            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            props.ContentType = "application/json"
            props.CorrelationData = request.correlation
            props.MessageExpiryInterval = ANSWER_EXPIRY_SECONDS
            await client.publish(
                kiosk_responses_topic(request.tenant, request.kiosk_id).value,
                json.dumps(answer.body).encode(),
                qos=1,
                properties=props,
            )
            self.answered += 1
            if not answer.repeated:
                metrics.count_checkin(answer.outcome)
            log.info(
                "kiosk %s/%s: %s%s",
                request.tenant,
                request.kiosk_id,
                answer.outcome,
                " (repeated)" if answer.repeated else "",
            )
        except aiomqtt.MqttError as exc:
            log.warning("kiosk responder could not answer: %s", exc)
        except Exception:
            log.exception("kiosk responder failed on a request of %s", request.kiosk_id)
        finally:
            slots.release()

    def _answer(self, request: Request) -> kiosks.Answer | None:
        with self._sessions() as session:
            if kiosks.enabled_kiosk(session, request.tenant, request.kiosk_id) is None:
                return None
            parsed = kiosks.parse_request(request.payload)
            if parsed is None:
                # No answer row (a valid request may reuse the correlation data) and
                # no failure towards the lock-out: only the attempt's audit row.
                kiosks.audit_checkin(session, request.tenant, request.kiosk_id, "invalid", None)
                session.commit()
                return kiosks.Answer(dict(kiosks.INVALID))
            return kiosks.check_in(
                session,
                self._clinic,
                tenant=request.tenant,
                kiosk_id=request.kiosk_id,
                correlation=request.correlation,
                request=parsed,
                window=self._window,
                limit=self._limit,
            )
