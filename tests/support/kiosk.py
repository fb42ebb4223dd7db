"""A kiosk for tests: registered by the clinic's admin, enrolled through the api, and
asking over a real MQTT 5 connection (paho, TCP) as the reference device does."""

from __future__ import annotations

import json
import queue
import time
import uuid
from dataclasses import dataclass
from typing import Any

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.support.clinic import Clinic
from tests.support.mqtt import Probe, Received
from tests.support.stack import Api


def request_properties(
    response_topic: str | None, correlation: bytes | None, expiry: int | None = 30
) -> Properties:
    props = Properties(PacketTypes.PUBLISH)
    if response_topic is not None:
        props.ResponseTopic = response_topic
    if correlation is not None:
        props.CorrelationData = correlation
    if expiry is not None:
        props.MessageExpiryInterval = expiry
    props.ContentType = "application/json"
    return props


def check_in_body(last_name: str = "Lovelace", dob: str = "1985-12-10") -> dict[str, str]:
    return {"type": "check_in", "lastName": last_name, "dateOfBirth": dob}


@dataclass
class KioskDevice:
    clinic: Clinic
    id: str
    name: str
    secret: str
    last_send: float = 0.0

    @classmethod
    def enroll(
        cls, clinic: Clinic, kiosk_id: str | None = None, *, name: str = "Lobby"
    ) -> KioskDevice:
        kiosk_id = kiosk_id or f"k-{uuid.uuid4().hex[:8]}"
        made = clinic.post(
            clinic.admin,
            "/kiosks",
            {"id": kiosk_id, "name": name, "locationId": clinic.location_id},
        )
        r = clinic.stack.http().post(
            "/kiosks/enroll", json={"enrollmentCode": made["enrollmentCode"]}
        )
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["tenant"] == clinic.tenant
        assert body["kioskId"] == kiosk_id
        return cls(clinic, kiosk_id, name, body["deviceSecret"])

    @property
    def requests(self) -> str:
        return f"tenants/{self.clinic.tenant}/kiosks/{self.id}/requests"

    @property
    def responses(self) -> str:
        return f"tenants/{self.clinic.tenant}/kiosks/{self.id}/responses"

    def credentials(self, api: Api | None = None) -> dict[str, Any]:
        r = self.clinic.stack.http(self.secret, api=api).post("/kiosks/credentials")
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    def connect(self, *, subscribe: bool = True) -> Probe:
        creds = self.credentials()
        probe = self.clinic.stack.probe(creds, transport="tcp")
        rc = probe.connect()
        assert not rc.is_failure, rc
        if subscribe:
            assert probe.subscribe(self.responses).value == 1
        return probe

    def send(
        self,
        probe: Probe,
        body: dict[str, Any] | bytes | str | None = None,
        *,
        correlation: bytes | None = None,
        response_topic: str | None = "own",
        expiry: int | None = 30,
        paced: bool = True,
    ) -> bytes:
        """Publish a request; returns its correlation data. ``paced``: wait so as to
        stay under the responder's limit of 5 requests a second per kiosk."""
        if paced:
            time.sleep(max(0.0, self.last_send + 0.25 - time.monotonic()))
        self.last_send = time.monotonic()
        correlation = correlation if correlation is not None else uuid.uuid4().bytes
        payload = body if isinstance(body, bytes | str) else json.dumps(body or check_in_body())
        topic = self.responses if response_topic == "own" else response_topic
        rc = probe.publish(
            self.requests, payload, properties=request_properties(topic, correlation, expiry)
        )
        assert not rc.is_failure, rc
        return correlation

    def answer(self, probe: Probe, correlation: bytes, timeout: float = 15) -> dict[str, Any]:
        msg = probe.wait_for(lambda m: m.correlation == correlation, timeout=timeout)
        assert msg.topic == self.responses
        assert msg.content_type == "application/json"
        return msg.json()  # type: ignore[no-any-return]

    def ask(self, probe: Probe, body: dict[str, Any] | bytes | str | None = None) -> dict[str, Any]:
        return self.answer(probe, self.send(probe, body))


def nothing_for(probe: Probe, seconds: float) -> list[Received]:
    """What arrives within ``seconds`` (expected: nothing)."""
    deadline = time.monotonic() + seconds
    got: list[Received] = []
    while (left := deadline - time.monotonic()) > 0:
        try:
            got.append(probe.messages.get(timeout=left))
        except queue.Empty:
            break
    return got
