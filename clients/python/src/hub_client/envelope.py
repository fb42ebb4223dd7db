"""Checking event envelopes (contract section 4) as they arrive from MQTT or replay."""

from __future__ import annotations

import json
from typing import Any

Event = dict[str, Any]


class MalformedEvent(ValueError):
    """A payload that is not an event of this tenant; skipped, never yielded."""


def check_envelope(body: Any, *, tenant: str) -> Event:
    """The envelope itself when it has a string ``id``, a positive integer ``seq``, a
    string ``type`` and this ``tenant``; MalformedEvent otherwise."""
    if not isinstance(body, dict):
        raise MalformedEvent("not a JSON object")
    event_id, seq, event_type = body.get("id"), body.get("seq"), body.get("type")
    if not isinstance(event_id, str) or not event_id:
        raise MalformedEvent("no id")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        raise MalformedEvent(f"event {event_id}: no positive integer seq")
    if not isinstance(event_type, str):
        raise MalformedEvent(f"event {event_id}: no type")
    if body.get("tenant") != tenant:
        raise MalformedEvent(f"event {event_id}: tenant {body.get('tenant')!r} is not {tenant!r}")
    return body


def parse_payload(payload: bytes | bytearray | str, *, tenant: str) -> Event:
    """Decode one MQTT payload (UTF-8 JSON) and check it."""
    try:
        body = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedEvent(f"not JSON: {exc}") from None
    return check_envelope(body, tenant=tenant)
