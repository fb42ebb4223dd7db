"""The event envelope every subscriber receives (contract section 4)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any


def iso_utc(moment: datetime) -> str:
    """``2026-11-26T09:14:03.512Z``: UTC, millisecond precision, as browsers parse it."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime")
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# A connection id as the api issues them (``acme.u-17.3f9a``): bounded and id-shaped, so
# a header value can never smuggle anything else into an event.
ORIGIN_MAX_LENGTH = 128
_ORIGIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def parse_origin(value: str | None) -> str | None:
    """The connection id a client named (``X-Hub-Connection``), or None when it named
    none or something that is not shaped like one: an origin is a hint for the client's
    own toasts, never a reason to refuse a write."""
    if value is None or len(value) > ORIGIN_MAX_LENGTH or not _ORIGIN.fullmatch(value):
        return None
    return value


def build_envelope(
    *,
    event_id: str,
    event_type: str,
    tenant: str,
    seq: int,
    occurred_at: datetime,
    actor: str,
    patient_id: str,
    entity_id: str,
    data: dict[str, Any],
    origin: str | None = None,
) -> dict[str, Any]:
    """The envelope; ``origin`` (the broker connection that made the change) is added
    only when known, so events without one look exactly as before."""
    envelope = {
        "id": event_id,
        "type": event_type,
        "tenant": tenant,
        "seq": seq,
        "occurredAt": iso_utc(occurred_at),
        "actor": actor,
        "patientId": patient_id,
        "entityId": entity_id,
        "data": data,
    }
    if origin is not None:
        envelope["origin"] = origin
    return envelope


def dumps(payload: dict[str, Any]) -> str:
    """Compact, deterministic JSON (UTF-8 on the wire)."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, sort_keys=False)
