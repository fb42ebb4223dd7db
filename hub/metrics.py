"""The hub's Prometheus metrics: one registry per process, counted where things happen.

Labels are bounded sets only: catalog event types, credential kinds, actions and
outcomes. Never a tenant, a user, a patient or a raw path. The children of labelled
metrics are made once, up front: ``labels()`` takes a lock and a lookup per call,
which the event write path should not pay per event (an ``inc`` on a child is
prometheus-client's own small lock, nothing more).
"""

from __future__ import annotations

import contextlib
from collections import Counter as Tally
from collections.abc import Iterable
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from hub.catalog import CATALOG

REGISTRY: Final = CollectorRegistry(auto_describe=True)

# Anything outside the catalog (a type an older process wrote, say) shares one label.
OTHER_TYPE: Final = "other"
CREDENTIAL_KINDS: Final = ("session", "kiosk", "partner")
CREDENTIAL_ACTIONS: Final = ("issued", "renewed", "revoked")
KIOSK_OUTCOMES: Final = (
    "ok",
    "no_match",
    "outside_window",
    "already_checked_in",
    "ambiguous",
    "rate_limited",
    "invalid",
)

# Seconds; from a millisecond to a minute (a relay waits up to 30 s for PUBACKs).
LATENCY_BUCKETS: Final = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)

events_committed = Counter(
    "hub_events_committed",
    "Events committed to the outbox, by catalog type.",
    ["type"],
    registry=REGISTRY,
)
events_published = Counter(
    "hub_events_published",
    "Events the broker acknowledged (PUBACK) from this process's relay, by catalog type.",
    ["type"],
    registry=REGISTRY,
)
relay_lag = Histogram(
    "hub_relay_lag_seconds",
    "Per relay batch: how long its oldest row had waited in the outbox when fetched.",
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
publish_latency = Histogram(
    "hub_publish_latency_seconds",
    "Per event: from its commit (occurredAt) to the broker's PUBACK.",
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
relay_batches = Counter(
    "hub_relay_batches",
    "Relay batches published (all their PUBACKs received).",
    registry=REGISTRY,
)
credentials = Counter(
    "hub_credentials",
    "Broker credentials issued, renewed and revoked, by kind.",
    ["action", "kind"],
    registry=REGISTRY,
)
kiosk_checkins = Counter(
    "hub_kiosk_checkins",
    "Kiosk check-in requests answered, by outcome.",
    ["outcome"],
    registry=REGISTRY,
)
broker_clients_connected = Gauge(
    "hub_broker_clients_connected",
    "Clients connected to the broker ($SYS/broker/clients/connected).",
    registry=REGISTRY,
)
broker_messages_received = Gauge(
    "hub_broker_messages_received_per_minute",
    "Messages the broker received per minute, 1-minute load average "
    "($SYS/broker/load/messages/received/1min).",
    registry=REGISTRY,
)
broker_messages_sent = Gauge(
    "hub_broker_messages_sent_per_minute",
    "Messages the broker sent per minute, 1-minute load average "
    "($SYS/broker/load/messages/sent/1min).",
    registry=REGISTRY,
)

# $SYS topic -> the gauge it sets (the broker admin account may read $SYS/#).
BROKER_SYS_GAUGES: Final[dict[str, Gauge]] = {
    "$SYS/broker/clients/connected": broker_clients_connected,
    "$SYS/broker/load/messages/received/1min": broker_messages_received,
    "$SYS/broker/load/messages/sent/1min": broker_messages_sent,
}


_committed: Final = {t: events_committed.labels(t) for t in [*CATALOG, OTHER_TYPE]}
_published: Final = {t: events_published.labels(t) for t in [*CATALOG, OTHER_TYPE]}
_checkins: Final = {o: kiosk_checkins.labels(o) for o in KIOSK_OUTCOMES}
_credentials: Final = {
    (action, kind): credentials.labels(action, kind)
    for action in CREDENTIAL_ACTIONS
    for kind in CREDENTIAL_KINDS
}


def count_committed(types: Iterable[str]) -> None:
    """Count events of ``types`` (one entry per event) as committed."""
    _count(_committed, types)


def count_published(types: Iterable[str]) -> None:
    _count(_published, types)


def _count(children: dict[str, Counter], types: Iterable[str]) -> None:
    for event_type, n in Tally(types).items():
        children.get(event_type, children[OTHER_TYPE]).inc(n)


def count_credential(action: str, kind: str, n: int = 1) -> None:
    child = _credentials.get((action, kind))
    if child is not None and n:
        child.inc(n)


def count_checkin(outcome: str) -> None:
    child = _checkins.get(outcome)
    if child is not None:
        child.inc()


def broker_sys_value(topic: str, payload: bytes) -> None:
    """Set the gauge of one ``$SYS`` topic from its payload (a number as text)."""
    gauge = BROKER_SYS_GAUGES.get(topic)
    if gauge is None:
        return
    with contextlib.suppress(UnicodeDecodeError, ValueError):  # not a number: keep the last
        gauge.set(float(payload.decode("ascii").strip()))


# Set at scrape time (GET /metrics) from the database and this process's state.
outbox_backlog = Gauge(
    "hub_outbox_backlog",
    "Outbox rows not yet published (whole database).",
    registry=REGISTRY,
)
outbox_oldest_age = Gauge(
    "hub_outbox_oldest_unpublished_seconds",
    "Age of the oldest unpublished outbox row; 0 when there is none.",
    registry=REGISTRY,
)
notifications_pending = Gauge(
    "hub_notifications_pending",
    "Notifications not acknowledged (whole database; counted up to a cap).",
    registry=REGISTRY,
)
notifications_escalated = Gauge(
    "hub_notifications_escalated_pending",
    "Critical alerts escalated and still not acknowledged (counted up to a cap).",
    registry=REGISTRY,
)
relay_active = Gauge(
    "hub_relay_active",
    "1 when this process's relay is the one that publishes, else 0.",
    registry=REGISTRY,
)
writer_pending = Gauge(
    "hub_writer_pending",
    "Events waiting for this process's event writer.",
    registry=REGISTRY,
)
