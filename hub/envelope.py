"""The event envelope every subscriber receives (contract section 4)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any


def iso_utc(moment: datetime) -> str:
    """``2026-11-26T09:14:03.512Z``: UTC, millisecond precision, as browsers parse it."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime")
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


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
) -> dict[str, Any]:
    return {
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


def dumps(payload: dict[str, Any]) -> str:
    """Compact, deterministic JSON (UTF-8 on the wire)."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, sort_keys=False)
