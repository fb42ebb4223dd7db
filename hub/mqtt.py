"""MQTT v5 helpers shared by every hub client: publish properties, a login check."""

from __future__ import annotations

import ssl
import uuid

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode


def publish_properties(*, json_body: bool, expiry: int | None = None) -> Properties:
    """``content type application/json`` for JSON bodies; an optional message expiry
    (seconds) after which the broker drops the message from queues and retained store."""
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    if json_body:
        props.ContentType = "application/json"
    if expiry is not None:
        props.MessageExpiryInterval = expiry
    return props


# CONNACK reason codes that mean "these credentials are refused" (MQTT 5).
_REFUSED_LOGIN = frozenset({0x86, 0x87})


async def login_accepted(
    *,
    host: str,
    port: int,
    username: str,
    password: str,
    timeout: float = 5.0,
    tls_context: ssl.SSLContext | None = None,
) -> bool:
    """Whether the broker accepts this login: connect with a throwaway client id and
    clean start, then disconnect. False when the broker refuses the credentials
    (bad user name or password, not authorised); other failures raise MqttError."""
    client = aiomqtt.Client(
        host,
        port,
        username=username,
        password=password,
        identifier=f"hub-check-{uuid.uuid4().hex[:12]}",
        protocol=aiomqtt.ProtocolVersion.V5,
        clean_start=True,
        timeout=timeout,
        tls_context=tls_context,
    )
    try:
        async with client:
            return True
    except aiomqtt.MqttCodeError as exc:
        rc = exc.rc
        code = rc.value if isinstance(rc, ReasonCode) else rc
        if code in _REFUSED_LOGIN:
            return False
        raise
