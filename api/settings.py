"""The api's configuration: one typed object, read from ``HUB_*`` environment variables."""

from __future__ import annotations

import ipaddress
import os
import re
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from hub.secretfiles import load_or_create_secret
from hub.tokens import ROLES

DEFAULT_CRITICAL_DIAGNOSES = (
    "malignant melanoma",
    "melanoma",
    "squamous cell carcinoma",
    "basal cell carcinoma",
    "severe atypia",
    "severely atypical",
)

_PLACEHOLDERS = {"", "change-me", "changeme", "secret", "dev", "development"}
_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


class Settings(BaseSettings):
    # HUB_SECRETS_DIR: a directory of files named like the variables in lower case
    # (hub_broker_admin_password, ...), as compose and Kubernetes mount secrets; a
    # variable in the environment still wins over its file.
    model_config = SettingsConfigDict(
        env_prefix="HUB_", extra="ignore", secrets_dir=os.environ.get("HUB_SECRETS_DIR") or None
    )

    env: Literal["development", "production"] = "development"
    data_dir: Path = Path("./var")
    database_url: str | None = None
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    ws_port: int = 9001
    public_ws_url: str | None = None
    public_mqtt_url: str | None = None
    # TLS (docs/operations.md, "TLS"): with a certificate and key, the broker's TCP and
    # WebSocket listeners serve TLS only, `hub up` serves the api over HTTPS, and the
    # api's own broker connections verify the broker against tls_ca_file (else the
    # system's CAs). `hub up --tls` makes a development CA and certificate.
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_ca_file: Path | None = None
    # Where `hub up` binds the broker's listeners; production refuses a non-loopback
    # address without TLS. The api's own address is http_host; behind a TLS proxy that
    # terminates HTTPS, say so with http_behind_tls_proxy.
    broker_bind_host: str = "127.0.0.1"
    http_behind_tls_proxy: bool = False

    jwt_secret: str | None = None
    jwt_public_key: str | None = None  # PEM, for RS256/ES256
    jwt_public_key_file: Path | None = None
    jwt_jwks_url: str | None = None
    jwt_algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256"])
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    # Where an identity provider's tokens hold their roles (a dotted path for nested
    # claims) and how its role names map to the hub's (JSON, {"physician": "provider"}).
    # Roles the hub does not know are ignored; a token with none may still read its own
    # notifications.
    jwt_roles_claim: str = Field(default="roles", min_length=1, max_length=100)
    jwt_role_map: dict[str, str] = Field(default_factory=dict)

    # Broker accounts; in development they come from the data directory.
    broker_admin_username: str = "hub-admin"
    broker_admin_password: str | None = None
    broker_service_username: str = "hub-service"
    broker_service_password: str | None = None

    session_ttl_seconds: int = Field(default=3600, ge=30, le=86400)
    max_sessions_per_user: int = Field(default=8, ge=1, le=100)
    # Broker credentials are ES256 tokens that the broker's plugin verifies.
    broker_token_issuer: str = Field(default="ehr-hub", min_length=1, max_length=64)
    broker_signing_key_file: Path | None = None  # PEM (EC P-256); else generated keys
    broker_jwks_file: Path | None = None  # where the broker reads the public keys
    broker_auth_plugin: str | None = None  # hub_auth.so for `hub up`; built in the repo
    relay_poll_interval_seconds: float = Field(default=1.0, gt=0)
    replay_retention_days: int = Field(default=30, ge=1)
    # Audit rows outlive events: six years by default (contract, section 12).
    audit_retention_days: int = Field(default=2190, ge=1)
    replay_max_limit: int = Field(default=1000, ge=1)
    max_body_bytes: int = Field(default=65536, ge=1024)
    # POST /events/batch carries up to 500 events.
    max_batch_body_bytes: int = Field(default=1048576, ge=1024)
    # Events waiting for the writer (POST /events and batches) past which new ones get
    # 503 with Retry-After instead of queueing: about a second of work at full speed.
    writer_max_pending: int = Field(default=2000, ge=1)
    clinic_timezone: str = "UTC"
    web_dist_dir: Path | None = None
    mosquitto_plugin: str | None = None  # the dynsec plugin; found in Debian's paths if unset

    # A biopsy result is critical when its diagnosis contains one of these (any case),
    # or when the result says concerning=true. Comma-separated in the environment.
    critical_diagnoses: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_CRITICAL_DIAGNOSES)
    )
    # An unacknowledged critical alert is re-sent every resend interval, at most
    # max_resends times, and escalated to the tenant's admins after escalate seconds.
    critical_resend_seconds: float = Field(default=300.0, gt=0)
    critical_max_resends: int = Field(default=2, ge=0, le=20)
    critical_escalate_seconds: float = Field(default=900.0, gt=0)
    notification_tick_seconds: float = Field(default=5.0, gt=0)
    # The alert router routes events that arrived through POST /events by the tenants'
    # alert rules (docs/notifications.md): woken by this process's commits, and polling
    # for other processes' every tick. Disabled, this process routes nothing of them
    # (another process's router, or this one after a restart, does).
    alert_router_enabled: bool = True
    alert_router_tick_seconds: float = Field(default=1.0, gt=0)

    # Kiosk check-in (docs/architecture.md, "Kiosks"). The arrival window is relative
    # to an appointment's start; failed check-ins lock a kiosk for a while.
    kiosk_credentials_ttl_seconds: int = Field(default=3600, ge=30, le=86400)
    kiosk_arrival_early_minutes: int = Field(default=60, ge=0, le=720)
    kiosk_arrival_late_minutes: int = Field(default=15, ge=0, le=720)
    kiosk_max_failures: int = Field(default=5, ge=1, le=1000)
    kiosk_failure_window_seconds: int = Field(default=600, ge=1, le=3600)
    kiosk_lockout_seconds: int = Field(default=600, ge=1)
    # Wrong enrollment codes per minute, all callers together (each api process counts
    # its own); more wrong codes get 429. A valid code always enrolls.
    kiosk_auth_max_failures: int = Field(default=10, ge=1, le=10000)

    # Integration partners (docs/architecture.md, "Partners"): the lifetime of their
    # broker credentials and access tokens; the client renews them before they end.
    partner_credentials_ttl_seconds: int = Field(default=3600, ge=30, le=86400)

    # Rate limits (api/rate_limits.py, docs/operations.md): token buckets per caller
    # (user, partner or kiosk) and per tenant, in each api process. A burst is how many
    # at once; per minute is the steady rate the bucket refills at.
    rate_limit_enabled: bool = True
    rate_limit_max_keys: int = Field(default=100_000, ge=100)
    # Credentials: a user's tabs renew about hourly; a reload loop must not take 200.
    rate_limit_credentials_burst: int = Field(default=30, ge=1)
    rate_limit_credentials_per_minute: float = Field(default=10, gt=0)
    # A shift change: every user of a large tenant with a few tabs within a minute.
    rate_limit_credentials_tenant_burst: int = Field(default=2000, ge=1)
    rate_limit_credentials_tenant_per_minute: float = Field(default=1200, gt=0)
    # Replay: a catch-up after each reconnect, a page at a time.
    rate_limit_replay_burst: int = Field(default=120, ge=1)
    rate_limit_replay_per_minute: float = Field(default=120, gt=0)
    rate_limit_replay_tenant_burst: int = Field(default=3000, ge=1)
    rate_limit_replay_tenant_per_minute: float = Field(default=3000, gt=0)
    # Writes, counted in events for POST /events/batch: a lab service posts thousands
    # of results an hour in batches; staff write a few times a minute.
    rate_limit_writes_burst: int = Field(default=10_000, ge=1)
    rate_limit_writes_per_minute: float = Field(default=12_000, gt=0)
    rate_limit_writes_tenant_burst: int = Field(default=20_000, ge=1)
    rate_limit_writes_tenant_per_minute: float = Field(default=30_000, gt=0)
    # Operations (docs/operations.md): a scraper's bearer token for GET /metrics
    # (admins may read it with their own token too), and the log line format.
    metrics_token: str | None = None
    log_format: Literal["json", "text"] | None = None  # json in production, else text

    @field_validator(
        "database_url",
        "public_ws_url",
        "public_mqtt_url",
        "jwt_secret",
        "jwt_public_key",
        "jwt_public_key_file",
        "jwt_jwks_url",
        "jwt_issuer",
        "jwt_audience",
        "broker_admin_password",
        "broker_service_password",
        "web_dist_dir",
        "mosquitto_plugin",
        "broker_signing_key_file",
        "broker_jwks_file",
        "broker_auth_plugin",
        "tls_cert_file",
        "tls_key_file",
        "tls_ca_file",
        "metrics_token",
        "log_format",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # `HUB_JWT_ISSUER=` in a shell or compose file means "not set", not "must be ''".
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("critical_diagnoses", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.split(",")
        if isinstance(value, list):
            terms = [" ".join(str(v).lower().split()) for v in value]
            return [t for t in terms if t]
        return value

    @field_validator("broker_admin_password", "broker_service_password")
    @classmethod
    def _not_token_shaped(cls, value: str | None) -> str | None:
        # The broker's token plugin takes any password of three base64url parts for a
        # token, so such a password could never log in to Dynamic Security.
        if value is not None and _TOKEN_SHAPE.fullmatch(value):
            raise ValueError("a broker account password must not have the shape a.b.c of a token")
        return value

    @field_validator("metrics_token")
    @classmethod
    def _real_metrics_token(cls, value: str | None) -> str | None:
        if value is not None and (value.lower() in _PLACEHOLDERS or len(value) < 16):
            raise ValueError("HUB_METRICS_TOKEN is a placeholder or shorter than 16 characters")
        return value

    @model_validator(mode="after")
    def _role_map_names_hub_roles(self) -> Settings:
        unknown = sorted({r for r in self.jwt_role_map.values() if r not in ROLES})
        if unknown:
            raise ValueError(
                f"HUB_JWT_ROLE_MAP maps to roles the hub does not have: {', '.join(unknown)} "
                f"(roles: {', '.join(sorted(ROLES))})"
            )
        return self

    @model_validator(mode="after")
    def _tls_files_go_together(self) -> Settings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("set both HUB_TLS_CERT_FILE and HUB_TLS_KEY_FILE, or neither")
        if self.tls_ca_file is not None and self.tls_cert_file is None:
            raise ValueError("HUB_TLS_CA_FILE needs HUB_TLS_CERT_FILE and HUB_TLS_KEY_FILE")
        return self

    @model_validator(mode="after")
    def _production_is_encrypted_off_loopback(self) -> Settings:
        if self.env != "production" or self.tls_enabled:
            return self
        if not _is_loopback(self.mqtt_host):
            raise ValueError(
                "production refuses a plaintext connection to a broker off loopback "
                f"(HUB_MQTT_HOST={self.mqtt_host}): set HUB_TLS_CERT_FILE and HUB_TLS_KEY_FILE"
            )
        if not _is_loopback(self.broker_bind_host):
            raise ValueError(
                "production refuses plaintext broker listeners off loopback: set "
                "HUB_TLS_CERT_FILE and HUB_TLS_KEY_FILE, or bind HUB_BROKER_BIND_HOST to 127.0.0.1"
            )
        if not _is_loopback(self.http_host) and not self.http_behind_tls_proxy:
            raise ValueError(
                "production refuses plaintext HTTP off loopback: set HUB_TLS_CERT_FILE and "
                "HUB_TLS_KEY_FILE, or HUB_HTTP_BEHIND_TLS_PROXY=true behind a proxy that "
                "terminates TLS"
            )
        return self

    @model_validator(mode="after")
    def _audit_outlives_events(self) -> Settings:
        # Contract, section 12: audit rows are kept longer than events.
        if self.audit_retention_days < self.replay_retention_days:
            raise ValueError("HUB_AUDIT_RETENTION_DAYS must be at least HUB_REPLAY_RETENTION_DAYS")
        return self

    @model_validator(mode="after")
    def _production_needs_real_secrets(self) -> Settings:
        if self.env == "production":
            if not (self.jwt_public_key or self.jwt_public_key_file or self.jwt_jwks_url):
                raise ValueError(
                    "production verifies RS256/ES256: "
                    "set HUB_JWT_PUBLIC_KEY(_FILE) or HUB_JWT_JWKS_URL"
                )
            for name in ("broker_admin_password", "broker_service_password"):
                value = getattr(self, name)
                if value is None or value.lower() in _PLACEHOLDERS or len(value) < 16:
                    raise ValueError(f"production needs a real HUB_{name.upper()}")
            if self.database_url is None:
                raise ValueError("production needs HUB_DATABASE_URL")
        return self

    @property
    def development(self) -> bool:
        return self.env == "development"

    @property
    def resolved_log_format(self) -> Literal["json", "text"]:
        return self.log_format or ("text" if self.development else "json")

    @cached_property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{(self.data_dir / 'hub.db').resolve()}"

    @cached_property
    def resolved_jwt_secret(self) -> str | None:
        """The HS256 secret: configured, or generated into the data directory in
        development. Production never uses a shared secret."""
        if not self.development:
            return None
        if self.jwt_secret:
            if self.jwt_secret.lower() in _PLACEHOLDERS or len(self.jwt_secret) < 16:
                raise ValueError("HUB_JWT_SECRET is a placeholder or shorter than 16 characters")
            return self.jwt_secret
        return load_or_create_secret(self.data_dir / "secrets" / "jwt-secret")

    @property
    def signing_keys_dir(self) -> Path:
        return self.data_dir / "secrets" / "broker-signing"

    @property
    def resolved_jwks_file(self) -> Path:
        return self.broker_jwks_file or self.data_dir / "broker" / "jwks.json"

    @property
    def tls_enabled(self) -> bool:
        return self.tls_cert_file is not None

    @property
    def websocket_url(self) -> str:
        scheme = "wss" if self.tls_enabled else "ws"
        return self.public_ws_url or f"{scheme}://localhost:{self.ws_port}/mqtt"

    @property
    def mqtt_url(self) -> str:
        scheme = "mqtts" if self.tls_enabled else "mqtt"
        return self.public_mqtt_url or f"{scheme}://localhost:{self.mqtt_port}"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
