"""The hub's core library: event catalog, topics, outbox and relay, broker
administration and credentials, tokens."""

from hub.broker_admin import Acl, BrokerAdmin, DynsecAdmin, Revocation, Role
from hub.broker_tokens import AclRule, KeyRing, TokenSigner, session_acl
from hub.catalog import CATALOG, EventType, catalog_json_schema, get_event_type
from hub.credentials import (
    CredentialIssuer,
    IssuedCredentials,
    SessionNotFoundError,
)
from hub.envelope import build_envelope
from hub.errors import (
    BrokerUnavailableError,
    DynsecError,
    EventValidationError,
    HubError,
    TokenError,
    UnknownEventTypeError,
)
from hub.leader import FileLeadership, Leadership, PostgresLeadership, leadership_for
from hub.outbox import EmittedEvent, ReplayPage, Snapshot, emit, latest_seq, replay
from hub.relay import Relay, RelayStatus
from hub.tokens import Principal, TokenVerifier, mint_dev_token
from hub.topics import (
    Topic,
    event_topic,
    meta_seq_topic,
    notification_topic,
    snapshot_topic,
    validate_id,
    validate_tenant,
)

__all__ = [
    "CATALOG",
    "Acl",
    "AclRule",
    "BrokerAdmin",
    "BrokerUnavailableError",
    "CredentialIssuer",
    "DynsecAdmin",
    "DynsecError",
    "EmittedEvent",
    "EventType",
    "EventValidationError",
    "FileLeadership",
    "HubError",
    "IssuedCredentials",
    "KeyRing",
    "Leadership",
    "PostgresLeadership",
    "Principal",
    "Relay",
    "RelayStatus",
    "ReplayPage",
    "Revocation",
    "Role",
    "SessionNotFoundError",
    "Snapshot",
    "TokenError",
    "TokenSigner",
    "TokenVerifier",
    "Topic",
    "UnknownEventTypeError",
    "build_envelope",
    "catalog_json_schema",
    "emit",
    "event_topic",
    "get_event_type",
    "latest_seq",
    "leadership_for",
    "meta_seq_topic",
    "mint_dev_token",
    "notification_topic",
    "replay",
    "session_acl",
    "snapshot_topic",
    "validate_id",
    "validate_tenant",
]
