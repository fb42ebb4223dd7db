"""Python client for integration partners of the EHR notification hub.

``HubSubscriber`` yields the partner's granted events, each once and in seq order,
across reconnects, credential renewals and restarts, with a durable watermark in an
SQLite file (``SqliteStore``).
"""

from hub_client.backoff import Backoff
from hub_client.credentials import Credentials
from hub_client.envelope import Event
from hub_client.errors import HistoryGoneError, HubClientError, PartnerRefusedError
from hub_client.store import SqliteStore
from hub_client.subscriber import HubSubscriber

__all__ = [
    "Backoff",
    "Credentials",
    "Event",
    "HistoryGoneError",
    "HubClientError",
    "HubSubscriber",
    "PartnerRefusedError",
    "SqliteStore",
]
