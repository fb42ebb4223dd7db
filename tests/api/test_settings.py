"""Only the app reads the environment, and production refuses placeholder secrets."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from api.app import create_app
from api.settings import Settings

STRONG = "x" * 32


def test_production_requires_a_public_key_or_jwks() -> None:
    with pytest.raises(ValidationError, match="RS256/ES256"):
        Settings(
            env="production",
            database_url="postgresql+psycopg://h/db",
            broker_admin_password=STRONG,
            broker_service_password=STRONG,
        )


@pytest.mark.parametrize("password", [None, "changeme", "secret", "short"])
def test_production_refuses_placeholder_broker_passwords(password: str | None) -> None:
    with pytest.raises(ValidationError, match="HUB_BROKER"):
        Settings(
            env="production",
            database_url="postgresql+psycopg://h/db",
            jwt_jwks_url="https://idp.invalid/jwks.json",
            broker_admin_password=password,
            broker_service_password=STRONG,
        )


def test_production_with_real_settings_has_no_shared_secret() -> None:
    s = Settings(
        env="production",
        database_url="postgresql+psycopg://h/db",
        jwt_jwks_url="https://idp.invalid/jwks.json",
        broker_admin_password=STRONG,
        broker_service_password=STRONG,
    )
    assert s.resolved_jwt_secret is None


def test_development_refuses_a_placeholder_jwt_secret(tmp_path: object) -> None:
    with pytest.raises(ValueError, match="placeholder"):
        _ = Settings(env="development", jwt_secret="changeme").resolved_jwt_secret


def test_production_app_has_no_development_sign_in(tmp_path: Path) -> None:
    settings = Settings(
        env="production",
        data_dir=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'hub.db'}",
        jwt_jwks_url="https://idp.invalid/jwks.json",
        broker_admin_password=STRONG,
        broker_service_password=STRONG,
    )
    paths = set(create_app(settings).openapi()["paths"])
    assert "/realtime/credentials" in paths
    assert "/dev/token" not in paths


async def test_development_sign_in_refuses_callers_from_other_machines(tmp_path: Path) -> None:
    settings = Settings(env="development", data_dir=tmp_path)
    app = create_app(settings)
    body = {"tenant": "acme", "user": "u-1", "roles": ["admin"]}
    remote = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
    async with httpx.AsyncClient(transport=remote, base_url="http://hub") as client:
        r = await client.post("/dev/token", json=body)
    assert r.status_code == 403
    assert r.json()["error"] == "forbidden"
    local = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=local, base_url="http://hub") as client:
        r = await client.post("/dev/token", json=body)
    assert r.status_code == 200
    assert r.json()["token"].count(".") == 2


@pytest.mark.parametrize("name", ["broker_admin_password", "broker_service_password"])
def test_a_broker_password_shaped_like_a_token_is_refused(name: str) -> None:
    # The broker's token plugin would take it for a token and never let it log in.
    with pytest.raises(ValidationError, match=r"shape a\.b\.c"):
        Settings(**{name: "clinic.broker.Secret2024"})  # type: ignore[arg-type]
    assert Settings(**{name: "clinic-broker-Secret2024"})  # type: ignore[arg-type]


def test_audit_rows_may_not_be_kept_shorter_than_events() -> None:
    with pytest.raises(ValidationError, match="HUB_AUDIT_RETENTION_DAYS"):
        Settings(replay_retention_days=60, audit_retention_days=30)
    assert Settings(replay_retention_days=60, audit_retention_days=60).audit_retention_days == 60


def _production(**extra: object) -> Settings:
    return Settings(
        env="production",
        database_url="postgresql+psycopg://h/db",
        jwt_jwks_url="https://idp.invalid/jwks.json",
        broker_admin_password=STRONG,
        broker_service_password=STRONG,
        **extra,  # type: ignore[arg-type]
    )


def test_production_refuses_plaintext_off_loopback(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="plaintext broker listeners"):
        _production(broker_bind_host="0.0.0.0")
    with pytest.raises(ValidationError, match="plaintext HTTP"):
        _production(http_host="10.1.2.3")
    with pytest.raises(ValidationError, match="plaintext connection to a broker"):
        _production(mqtt_host="broker")
    # Loopback only, TLS, or HTTPS terminated by a proxy in front of the api: accepted.
    assert _production().mqtt_url == "mqtt://localhost:1883"
    assert _production(http_host="0.0.0.0", http_behind_tls_proxy=True).http_behind_tls_proxy
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    tls = _production(
        broker_bind_host="0.0.0.0", http_host="0.0.0.0", tls_cert_file=cert, tls_key_file=key
    )
    assert tls.mqtt_url == "mqtts://localhost:1883"
    assert tls.websocket_url == "wss://localhost:9001/mqtt"


def test_tls_certificate_and_key_come_together(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="HUB_TLS_KEY_FILE"):
        Settings(tls_cert_file=tmp_path / "c.pem")
    with pytest.raises(ValidationError, match="HUB_TLS_CA_FILE"):
        Settings(tls_ca_file=tmp_path / "ca.pem")


@pytest.mark.parametrize("token", ["changeme", "short"])
def test_a_placeholder_metrics_token_is_refused(token: str) -> None:
    with pytest.raises(ValidationError, match="HUB_METRICS_TOKEN"):
        Settings(metrics_token=token)


def test_log_format_defaults_to_json_in_production_and_text_in_development() -> None:
    production = Settings(
        env="production",
        database_url="postgresql+psycopg://h/db",
        jwt_jwks_url="https://idp.invalid/jwks.json",
        broker_admin_password=STRONG,
        broker_service_password=STRONG,
    )
    assert production.resolved_log_format == "json"
    assert Settings().resolved_log_format == "text"
    assert Settings(log_format="json").resolved_log_format == "json"
    assert Settings(metrics_token="", log_format="").metrics_token is None


def test_secrets_come_from_files_in_hub_secrets_dir(tmp_path: Path) -> None:
    (tmp_path / "hub_broker_admin_password").write_text("from-a-file-0123456789\n")
    (tmp_path / "hub_jwt_role_map").write_text('{"physician": "provider"}')
    code = (
        "from api.settings import Settings; s = Settings(); "
        "print(repr(s.broker_admin_password), s.jwt_role_map['physician'])"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "HUB_SECRETS_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        check=True,
    )
    # The file's trailing newline is not part of the password.
    assert out.stdout.split() == ["'from-a-file-0123456789'", "provider"]
