"""MQTT v5 publish properties shared by every hub publisher."""

from __future__ import annotations

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties


def publish_properties(*, json_body: bool, expiry: int | None = None) -> Properties:
    """``content type application/json`` for JSON bodies; an optional message expiry
    (seconds) after which the broker drops the message from queues and retained store."""
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    if json_body:
        props.ContentType = "application/json"
    if expiry is not None:
        props.MessageExpiryInterval = expiry
    return props
