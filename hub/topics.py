"""Topic names and filters of the hub, validated when they are built.

Every topic lives under ``tenants/{tenant}/``. Identifiers are opaque: they never
contain ``/``, ``+``, ``#`` or anything else that could change a topic's shape, so a
topic cannot smuggle a wildcard or carry protected health information.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TENANT_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_SEGMENT_RE = re.compile(r"^[a-z][a-z_]{0,31}$")


def validate_tenant(tenant: str) -> str:
    """Return ``tenant`` if it is a valid tenant id, else raise ``ValueError``."""
    if not isinstance(tenant, str) or not _TENANT_RE.fullmatch(tenant):
        raise ValueError(f"invalid tenant id {tenant!r}")
    return tenant


def validate_id(value: str, what: str = "id") -> str:
    """Return ``value`` if it is a valid opaque id, else raise ``ValueError``."""
    if not isinstance(value, str) or not _ID_RE.fullmatch(value):
        raise ValueError(f"invalid {what} {value!r}")
    return value


def _segment(value: str, what: str) -> str:
    if not _SEGMENT_RE.fullmatch(value):
        raise ValueError(f"invalid {what} {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class Topic:
    """A concrete topic name (no wildcards) under one tenant."""

    value: str

    def __post_init__(self) -> None:
        parts = self.value.split("/")
        if len(parts) < 3 or parts[0] != "tenants" or any(not p for p in parts):
            raise ValueError(f"invalid topic {self.value!r}")
        validate_tenant(parts[1])
        if any(c in self.value for c in "+#\x00"):
            raise ValueError(f"topic {self.value!r} contains a wildcard or NUL")

    def __str__(self) -> str:
        return self.value


def tenant_prefix(tenant: str) -> str:
    return f"tenants/{validate_tenant(tenant)}/"


def event_topic(tenant: str, patient_id: str, entity: str, entity_id: str, action: str) -> Topic:
    return Topic(
        f"{tenant_prefix(tenant)}patients/{validate_id(patient_id, 'patient id')}/"
        f"{_segment(entity, 'entity')}/{validate_id(entity_id, 'entity id')}/"
        f"{_segment(action, 'action')}"
    )


def snapshot_topic(tenant: str, patient_id: str, entity: str, entity_id: str) -> Topic:
    return Topic(
        f"{tenant_prefix(tenant)}patients/{validate_id(patient_id, 'patient id')}/"
        f"{_segment(entity, 'entity')}/{validate_id(entity_id, 'entity id')}"
    )


def meta_seq_topic(tenant: str) -> Topic:
    return Topic(f"{tenant_prefix(tenant)}meta/seq")


def notification_topic(tenant: str, user_id: str, notification_id: str) -> Topic:
    return Topic(
        f"{tenant_prefix(tenant)}users/{validate_id(user_id, 'user id')}/notifications/"
        f"{validate_id(notification_id, 'notification id')}"
    )


def patients_filter(tenant: str) -> str:
    """Everything about a tenant's patients: events and snapshots."""
    return f"{tenant_prefix(tenant)}patients/#"


def meta_filter(tenant: str) -> str:
    return f"{tenant_prefix(tenant)}meta/#"


def user_filter(tenant: str, user_id: str) -> str:
    return f"{tenant_prefix(tenant)}users/{validate_id(user_id, 'user id')}/#"


def kiosk_requests_topic(tenant: str, kiosk_id: str) -> Topic:
    """Where kiosk ``kiosk_id`` publishes its check-in requests."""
    return Topic(f"{tenant_prefix(tenant)}kiosks/{validate_id(kiosk_id, 'kiosk id')}/requests")


def kiosk_responses_topic(tenant: str, kiosk_id: str) -> Topic:
    """Where the hub answers kiosk ``kiosk_id`` (its requests' response topic)."""
    return Topic(f"{tenant_prefix(tenant)}kiosks/{validate_id(kiosk_id, 'kiosk id')}/responses")


# Every kiosk's requests, across tenants: what the hub's responder subscribes to.
KIOSK_REQUESTS_FILTER = "tenants/+/kiosks/+/requests"


def event_type_filter(tenant: str, entity: str, action: str | None) -> str:
    """The events of one type (``claim:denied``), or of every type of an entity
    (``claim:*``, action None), for any patient of the tenant. Snapshots, one level
    shorter, never match."""
    last = "+" if action is None else _segment(action, "action")
    return f"{tenant_prefix(tenant)}patients/+/{_segment(entity, 'entity')}/+/{last}"
