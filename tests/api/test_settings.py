"""Only the app reads the environment, and production refuses placeholder secrets."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

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
