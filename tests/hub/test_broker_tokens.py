"""Broker token keys and signing (pure logic; the broker's side is tests/broker)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from hub.broker_tokens import DENY_ALL, AclRule, KeyRing, TokenSigner, session_acl


def test_the_first_key_is_generated_once_and_shared(tmp_path: Path) -> None:
    a = KeyRing(directory=tmp_path / "keys")
    b = KeyRing(directory=tmp_path / "keys")  # another api process on the same directory
    assert [k.kid for k in a.keys] == [k.kid for k in b.keys]
    assert len(a.keys) == 1
    assert oct((tmp_path / "keys").stat().st_mode & 0o777) == "0o700"
    (pem,) = (tmp_path / "keys").glob("key-*.pem")
    assert oct(pem.stat().st_mode & 0o777) == "0o600"


def test_a_new_key_is_published_before_it_signs(tmp_path: Path) -> None:
    jwks = tmp_path / "broker" / "jwks.json"
    ring = KeyRing(directory=tmp_path / "keys", jwks_file=jwks, activation_seconds=3600)
    old = ring.active
    new = ring.rotate()
    # In the broker's file at once, newest first; signing waits for the activation.
    assert [k["kid"] for k in json.loads(jwks.read_text())["keys"]] == [new.kid, old.kid]
    assert ring.active.kid == old.kid
    soon = KeyRing(directory=tmp_path / "keys", activation_seconds=0)
    assert soon.active.kid == new.kid


def test_rotation_keeps_the_old_key_until_its_tokens_expire(tmp_path: Path) -> None:
    ring = KeyRing(
        directory=tmp_path / "keys",
        max_token_lifetime=timedelta(hours=1),
        activation_seconds=0,
    )
    old = ring.active
    now = datetime.now(UTC)
    new = ring.rotate(now=now)
    assert new.kid != old.kid
    assert ring.active.kid == new.kid
    assert {k["kid"] for k in ring.jwks()["keys"]} == {old.kid, new.kid}
    # Two hours after the new key appeared, every token of the old one has expired.
    newest = ring.rotate(now=now + timedelta(hours=2))
    assert {k.kid for k in ring.keys} == {new.kid, newest.kid}
    # Another process sees the rotation when it reloads.
    other = KeyRing(directory=tmp_path / "keys")
    assert [k.kid for k in other.keys] == [new.kid, newest.kid]


def test_rotation_stops_at_the_number_of_keys_the_broker_reads(tmp_path: Path) -> None:
    ring = KeyRing(directory=tmp_path / "keys")
    now = datetime.now(UTC)
    for i in range(15):
        ring.rotate(now=now + timedelta(seconds=i + 1))
    with pytest.raises(ValueError, match="16 keys"):
        ring.rotate(now=now + timedelta(seconds=30))
    assert len(ring.keys) == 16


def test_the_jwks_file_holds_public_keys_only(tmp_path: Path) -> None:
    ring = KeyRing(directory=tmp_path / "keys")
    ring.write_jwks(tmp_path / "broker" / "jwks.json")
    (jwk,) = json.loads((tmp_path / "broker" / "jwks.json").read_text())["keys"]
    assert set(jwk) == {"kty", "crv", "kid", "use", "alg", "x", "y"}
    assert (jwk["kty"], jwk["crv"], jwk["alg"]) == ("EC", "P-256", "ES256")


def test_a_configured_key_file_signs_and_cannot_be_rotated_here(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "signing.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    ring = KeyRing(key_file=path)
    token = TokenSigner(ring, issuer="ehr-hub").sign(
        kind="session",
        tenant="acme",
        sub="u-1",
        client_id="acme.u-1.x",
        username="session:acme.u-1.x",
        expires_at=datetime.now(UTC) + timedelta(minutes=5),
        acl=session_acl("acme", "u-1"),
    )
    claims = jwt.decode(token.token, key.public_key(), algorithms=["ES256"], audience="mqtt")
    assert claims["jti"] == token.jti
    assert jwt.get_unverified_header(token.token)["kid"] == ring.active.kid
    with pytest.raises(ValueError, match="replacing the file"):
        ring.rotate()


def test_keys_other_than_p256_are_refused(tmp_path: Path) -> None:
    for key in (ec.generate_private_key(ec.SECP384R1()), rsa.generate_private_key(65537, 2048)):
        path = tmp_path / "k.pem"
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        with pytest.raises(ValueError, match="P-256"):
            KeyRing(key_file=path)


def test_the_signer_refuses_acls_that_do_not_end_with_a_deny_or_are_too_long(
    tmp_path: Path,
) -> None:
    signer = TokenSigner(KeyRing(directory=tmp_path / "keys"), issuer="ehr-hub")
    common = {
        "kind": "session",
        "tenant": "acme",
        "sub": "u-1",
        "client_id": "c",
        "username": "session:c",
        "expires_at": datetime.now(UTC) + timedelta(minutes=1),
    }
    with pytest.raises(ValueError, match="deny"):
        signer.sign(acl=[AclRule("allow", "subscribe", "tenants/acme/#")], **common)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at most"):
        signer.sign(acl=[*[AclRule("allow", "subscribe", "a")] * 64, DENY_ALL], **common)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="expired"):
        signer.sign(acl=[DENY_ALL], **{**common, "expires_at": datetime.now(UTC)})  # type: ignore[arg-type]
    later = datetime.now(UTC) + timedelta(days=2)
    with pytest.raises(ValueError, match="retirement"):
        signer.sign(acl=[DENY_ALL], **{**common, "expires_at": later})  # type: ignore[arg-type]
