"""A real MQTT v5 client for tests (paho, TCP or WebSocket) that records everything
the broker says: CONNACK, SUBACK and PUBACK reason codes, messages, disconnects."""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

WAIT = 15.0  # generous upper bound for anything the broker should do "at once"


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retain: bool
    content_type: str | None
    expiry: int | None
    correlation: bytes | None = None

    def json(self) -> Any:
        return json.loads(self.payload)


class Probe:
    def __init__(
        self,
        *,
        client_id: str,
        username: str,
        password: str,
        port: int,
        transport: str = "tcp",
        clean_start: bool = True,
        session_expiry: int | None = None,
        ca_file: Path | None = None,
    ) -> None:
        """``ca_file``: connect with TLS, verifying the broker against this CA."""
        self.port = port
        self.clean_start = clean_start
        self.session_expiry = session_expiry
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5,
            transport=transport,  # type: ignore[arg-type]
        )
        if transport == "websockets":
            self.client.ws_set_options(path="/mqtt")
        if ca_file is not None:
            self.client.tls_set(ca_certs=str(ca_file))
        self.client.username_pw_set(username, password)
        self.client.reconnect_delay_set(min_delay=3600, max_delay=3600)
        self.messages: queue.Queue[Received] = queue.Queue()
        self.connack: queue.Queue[ReasonCode] = queue.Queue()
        self.disconnects: queue.Queue[ReasonCode] = queue.Queue()
        self._acks: dict[int, Any] = {}
        self._ack_cv = threading.Condition()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.on_publish = self._on_publish

    # callbacks (paho's network thread)
    def _on_connect(self, c: Any, u: Any, flags: Any, rc: ReasonCode, props: Any) -> None:
        self.session_present = bool(getattr(flags, "session_present", False))
        self.connack.put(rc)

    def _on_disconnect(self, c: Any, u: Any, flags: Any, rc: ReasonCode, props: Any) -> None:
        self.disconnects.put(rc)

    def _on_message(self, c: Any, u: Any, msg: mqtt.MQTTMessage) -> None:
        props = getattr(msg, "properties", None)
        self.messages.put(
            Received(
                msg.topic,
                bytes(msg.payload),
                bool(msg.retain),
                getattr(props, "ContentType", None),
                getattr(props, "MessageExpiryInterval", None),
                getattr(props, "CorrelationData", None),
            )
        )

    def _ack(self, mid: int, value: Any) -> None:
        with self._ack_cv:
            self._acks[mid] = value
            self._ack_cv.notify_all()

    def _on_subscribe(self, c: Any, u: Any, mid: int, rcs: list[ReasonCode], props: Any) -> None:
        self._ack(mid, rcs)

    def _on_publish(self, c: Any, u: Any, mid: int, rc: ReasonCode, props: Any) -> None:
        self._ack(mid, rc)

    def _wait_ack(self, mid: int) -> Any:
        with self._ack_cv:
            if not self._ack_cv.wait_for(lambda: mid in self._acks, WAIT):
                raise TimeoutError(f"no acknowledgement for mid {mid}")
            return self._acks.pop(mid)

    # API
    def connect(self) -> ReasonCode:
        """Connect and return the CONNACK reason code (success or refusal)."""
        props = Properties(PacketTypes.CONNECT)
        if self.session_expiry is not None:
            props.SessionExpiryInterval = self.session_expiry
        self.client.connect("127.0.0.1", self.port, clean_start=self.clean_start, properties=props)
        self.client.loop_start()
        try:
            rc = self.connack.get(timeout=WAIT)
        except queue.Empty:
            self.close()
            raise TimeoutError("no CONNACK") from None
        if rc.is_failure:
            self.close()
        return rc

    def subscribe(self, topic: str, qos: int = 1) -> ReasonCode:
        result, mid = self.client.subscribe(topic, qos)
        assert result == mqtt.MQTT_ERR_SUCCESS
        (rc,) = self._wait_ack(mid)
        return rc  # type: ignore[no-any-return]

    def publish(
        self,
        topic: str,
        payload: str | bytes,
        qos: int = 1,
        retain: bool = False,
        properties: Properties | None = None,
    ) -> ReasonCode:
        info = self.client.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        return self._wait_ack(info.mid)  # type: ignore[no-any-return]

    def wait_for(self, pred: Callable[[Received], bool], timeout: float = WAIT) -> Received:
        """The first message (from now on) matching ``pred``; others are kept aside."""
        deadline = time.monotonic() + timeout
        skipped: list[Received] = []
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no matching message; saw {[m.topic for m in skipped]}")
                try:
                    msg = self.messages.get(timeout=remaining)
                except queue.Empty:
                    continue
                if pred(msg):
                    return msg
                skipped.append(msg)
        finally:
            for m in skipped:
                self.messages.put(m)

    def wait_event(self, event_type: str, entity_id: str | None = None) -> Received:
        def match(m: Received) -> bool:
            if m.retain or not m.payload or "/meta/" in m.topic:
                return False
            body = m.json()
            return body.get("type") == event_type and (
                entity_id is None or body.get("entityId") == entity_id
            )

        return self.wait_for(match)

    def drain(self) -> list[Received]:
        out = []
        while True:
            try:
                out.append(self.messages.get_nowait())
            except queue.Empty:
                return out

    def wait_disconnect(self, timeout: float = WAIT) -> ReasonCode:
        return self.disconnects.get(timeout=timeout)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
        # paho's wake-up socket pair is otherwise closed only by Client.__del__, which
        # the garbage collector may run after the sockets' own finalizers (a
        # ResourceWarning, an error under filterwarnings=error).
        self.client._reset_sockets()


def dynsec(admin: Probe, *commands: dict[str, Any]) -> list[dict[str, Any]]:
    """Run dynsec commands as the broker admin (subscribed to the response topic);
    their replies, in order."""
    corr = uuid.uuid4().hex
    body = {"commands": [{**c, "correlationData": f"{corr}:{i}"} for i, c in enumerate(commands)]}
    assert not admin.publish("$CONTROL/dynamic-security/v1", json.dumps(body)).is_failure
    reply = admin.wait_for(lambda m: corr.encode() in m.payload)
    return reply.json()["responses"]  # type: ignore[no-any-return]
