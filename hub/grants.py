"""Event-type grants of integration partners (contract, section 11): which catalog
types a grant names, and the topic filters and broker acl that enforce it."""

from __future__ import annotations

from collections.abc import Iterable

from hub.broker_tokens import DENY_ALL, AclRule
from hub.catalog import CATALOG
from hub.topics import event_type_filter

ENTITIES: frozenset[str] = frozenset(t.entity for t in CATALOG.values())
# One grant entry per catalog type at most, and the acl stays far below the plugin's cap.
MAX_GRANT_ENTRIES = len(CATALOG)


def normalize_grant(entries: Iterable[str]) -> list[str]:
    """A grant's entries, checked and without repeats or entries covered by an
    ``entity:*`` of the same grant, sorted. ``ValueError`` names what is wrong."""
    wanted = set()
    for entry in entries:
        if not isinstance(entry, str):
            raise ValueError("event types are strings")
        entity, sep, action = entry.partition(":")
        if not sep:
            raise ValueError(f"unknown event type {entry!r}")
        if action == "*":
            if entity not in ENTITIES:
                raise ValueError(f"unknown entity {entity!r} in {entry!r}")
        elif entry not in CATALOG:
            raise ValueError(f"unknown event type {entry!r}")
        wanted.add(entry)
    if not wanted:
        raise ValueError("grant at least one event type")
    if len(wanted) > MAX_GRANT_ENTRIES:
        raise ValueError(f"at most {MAX_GRANT_ENTRIES} event types")
    wildcards = {e.partition(":")[0] for e in wanted if e.endswith(":*")}
    return sorted(e for e in wanted if e.endswith(":*") or e.partition(":")[0] not in wildcards)


def granted_types(grant: Iterable[str]) -> frozenset[str]:
    """Every catalog type a (normalized) grant covers."""
    covered: set[str] = set()
    for entry in grant:
        entity, _, action = entry.partition(":")
        if action == "*":
            covered.update(name for name, t in CATALOG.items() if t.entity == entity)
        elif entry in CATALOG:
            covered.add(entry)
    return frozenset(covered)


def grant_filters(tenant: str, grant: Iterable[str]) -> list[str]:
    """The exact topic filters a partner of ``tenant`` with this grant may subscribe to."""
    filters = []
    for entry in grant:
        entity, _, action = entry.partition(":")
        filters.append(event_type_filter(tenant, entity, None if action == "*" else action))
    return filters


def partner_acl(tenant: str, grant: Iterable[str]) -> tuple[AclRule, ...]:
    """Subscribe to the granted types' filters (or narrower ones); nothing else, and
    never publish."""
    return (*(AclRule("allow", "subscribe", f) for f in grant_filters(tenant, grant)), DENY_ALL)
