"""A headless reference kiosk: what a clinic's IT runs to try a lobby network.

``hub kiosk enroll CODE --api URL`` exchanges an enrollment code for the device secret
and keeps it in a file only its owner may read. ``hub kiosk check-in --last-name X
--dob YYYY-MM-DD`` fetches broker credentials with that secret, connects over MQTT 5
(TCP), asks, and prints the hub's answer as JSON. Exit status: 0 checked in, 1 the
hub refused (its reason is printed), 2 anything else went wrong.
"""

from __future__ import annotations

import json
import os
import queue
import ssl
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

DEFAULT_SECRET_FILE = Path("~/.config/hub/kiosk.json")
REQUEST_EXPIRY_SECONDS = 30


class DeviceError(Exception):
    """Enrollment, credentials or the broker failed: exit status 2."""


@dataclass(frozen=True, slots=True)
class Device:
    api: str
    tenant: str
    kiosk_id: str
    secret: str

    def save(self, path: Path) -> None:
        """Write the device file with mode 0600 (created so, never widened)."""
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(
                {
                    "api": self.api,
                    "tenant": self.tenant,
                    "kioskId": self.kiosk_id,
                    "deviceSecret": self.secret,
                },
                fh,
            )
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> Device:
        try:
            body = json.loads(path.read_text(encoding="utf-8"))
            return cls(body["api"], body["tenant"], body["kioskId"], body["deviceSecret"])
        except (OSError, ValueError, KeyError) as exc:
            raise DeviceError(f"no usable device file at {path}: enroll first ({exc})") from None


def _error(r: httpx.Response) -> str:
    try:
        return str(r.json().get("message", r.text))
    except ValueError:
        return r.text[:200]


def _verify(ca_file: Path | None) -> ssl.SSLContext | bool:
    """How HTTPS and MQTT over TLS check the hub: against ``ca_file`` (a clinic's own
    CA, or `hub up --tls`'s), else the system's trusted CAs."""
    return ssl.create_default_context(cafile=str(ca_file)) if ca_file else True


def enroll(api: str, code: str, *, timeout: float = 10.0, ca_file: Path | None = None) -> Device:
    api = api.rstrip("/")
    try:
        r = httpx.post(
            f"{api}/kiosks/enroll",
            json={"enrollmentCode": code},
            timeout=timeout,
            verify=_verify(ca_file),
        )
    except httpx.HTTPError as exc:
        raise DeviceError(f"cannot reach {api}: {exc}") from None
    if r.status_code != 201:
        raise DeviceError(f"enrollment refused ({r.status_code}): {_error(r)}")
    body = r.json()
    return Device(api, body["tenant"], body["kioskId"], body["deviceSecret"])


def credentials(
    device: Device, *, timeout: float = 10.0, ca_file: Path | None = None
) -> dict[str, Any]:
    try:
        r = httpx.post(
            f"{device.api}/kiosks/credentials",
            headers={"Authorization": f"Bearer {device.secret}"},
            timeout=timeout,
            verify=_verify(ca_file),
        )
    except httpx.HTTPError as exc:
        raise DeviceError(f"cannot reach {device.api}: {exc}") from None
    if r.status_code != 200:
        raise DeviceError(f"credentials refused ({r.status_code}): {_error(r)}")
    return r.json()  # type: ignore[no-any-return]


def check_in(
    device: Device,
    *,
    last_name: str,
    date_of_birth: str,
    mqtt_url: str | None = None,
    timeout: float = 10.0,
    ca_file: Path | None = None,
) -> dict[str, Any]:
    """Ask the hub over MQTT 5 and return its answer (``{"ok": ...}``)."""
    creds = credentials(device, timeout=timeout, ca_file=ca_file)
    url = urlsplit(mqtt_url or creds["mqttUrl"])
    if url.scheme not in ("mqtt", "tcp", "mqtts", "ssl") or not url.hostname:
        raise DeviceError(
            f"unsupported broker URL {url.geturl()!r} (mqtts://host:port or mqtt://host:port)"
        )
    tls = url.scheme in ("mqtts", "ssl")
    correlation = uuid.uuid4().bytes
    answers: queue.Queue[dict[str, Any]] = queue.Queue()
    events: queue.Queue[tuple[str, Any]] = queue.Queue()

    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=creds["clientId"], protocol=mqtt.MQTTv5
    )
    client.username_pw_set(creds["username"], creds["password"])
    if tls:
        client.tls_set(ca_certs=str(ca_file) if ca_file else None)

    def on_connect(c: Any, u: Any, flags: Any, rc: Any, props: Any) -> None:
        events.put(("connack", rc))

    def on_subscribe(c: Any, u: Any, mid: int, rcs: list[Any], props: Any) -> None:
        events.put(("suback", rcs[0]))

    def on_message(c: Any, u: Any, msg: mqtt.MQTTMessage) -> None:
        props = getattr(msg, "properties", None)
        if getattr(props, "CorrelationData", None) != correlation:
            return
        try:
            answers.put(json.loads(msg.payload))
        except ValueError:
            events.put(("error", "the hub's answer is not JSON"))

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    try:
        client.connect(url.hostname, url.port or (8883 if tls else 1883), clean_start=True)
    except OSError as exc:
        raise DeviceError(f"cannot reach the broker at {url.geturl()}: {exc}") from None
    client.loop_start()
    try:
        kind, rc = _next(events, timeout, "no CONNACK from the broker")
        if kind != "connack" or rc.is_failure:
            raise DeviceError(f"the broker refused the kiosk's credentials: {rc}")
        client.subscribe(creds["responseTopic"], qos=1)
        kind, rc = _next(events, timeout, "no SUBACK from the broker")
        if kind != "suback" or rc.is_failure:
            raise DeviceError(f"the broker refused the response topic: {rc}")
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        props.ResponseTopic = creds["responseTopic"]
        props.CorrelationData = correlation
        props.MessageExpiryInterval = REQUEST_EXPIRY_SECONDS
        props.ContentType = "application/json"
        body = {"type": "check_in", "lastName": last_name, "dateOfBirth": date_of_birth}
        client.publish(creds["requestTopic"], json.dumps(body), qos=1, properties=props)
        try:
            return answers.get(timeout=timeout)
        except queue.Empty:
            raise DeviceError(f"no answer within {timeout:g} s") from None
    finally:
        client.disconnect()
        client.loop_stop()


def _next(events: queue.Queue[tuple[str, Any]], timeout: float, what: str) -> tuple[str, Any]:
    try:
        return events.get(timeout=timeout)
    except queue.Empty:
        raise DeviceError(what) from None
