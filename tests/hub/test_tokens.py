"""Token verification: pinned algorithms, required claims, public keys and JWKS."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from hub.errors import TokenError
from hub.tokens import TokenVerifier, mint_dev_token

SECRET = "a-development-secret-of-32-chars!"
CLAIMS = {"sub": "u-1", "tenant": "acme", "roles": ["front_desk"]}


def _claims(**extra: object) -> dict[str, object]:
    return {**CLAIMS, "exp": int(time.time()) + 600, **extra}


def test_dev_token_round_trip() -> None:
    token = mint_dev_token(secret=SECRET, tenant="acme", user="u-1", roles=["billing", "admin"])
    principal = TokenVerifier(algorithms=["HS256"], key=SECRET).verify(token)
    assert principal.sub == "u-1"
    assert principal.tenant == "acme"
    assert principal.roles == {"billing", "admin"}


@pytest.mark.parametrize(
    "token",
    [
        jwt.encode(_claims(), None, algorithm="none"),
        jwt.encode(_claims(), "another-secret-that-is-long-enough", algorithm="HS256"),
        jwt.encode(_claims(exp=int(time.time()) - 5), SECRET, algorithm="HS256"),
        jwt.encode({k: v for k, v in _claims().items() if k != "exp"}, SECRET, algorithm="HS256"),
        jwt.encode(
            {k: v for k, v in _claims().items() if k != "tenant"}, SECRET, algorithm="HS256"
        ),
        jwt.encode(_claims(tenant="ACME/#"), SECRET, algorithm="HS256"),
        jwt.encode(_claims(roles=7), SECRET, algorithm="HS256"),
        jwt.encode(_claims(roles=["front_desk", 7]), SECRET, algorithm="HS256"),
        jwt.encode(_claims(sub="u/1"), SECRET, algorithm="HS256"),
        "not-a-jwt",
    ],
    ids=[
        "alg-none",
        "forged",
        "expired",
        "no-exp",
        "no-tenant",
        "bad-tenant",
        "roles-not-a-list",
        "role-not-a-string",
        "bad-sub",
        "garbage",
    ],
)
def test_bad_tokens_are_refused(token: str) -> None:
    with pytest.raises(TokenError):
        TokenVerifier(algorithms=["HS256"], key=SECRET).verify(token)


def test_issuer_and_audience_are_checked_when_configured() -> None:
    verifier = TokenVerifier(algorithms=["HS256"], key=SECRET, issuer="idp", audience="hub")
    good = jwt.encode(_claims(iss="idp", aud="hub"), SECRET, algorithm="HS256")
    assert verifier.verify(good).sub == "u-1"
    for bad in (_claims(iss="evil", aud="hub"), _claims(iss="idp", aud="other"), _claims()):
        with pytest.raises(TokenError):
            verifier.verify(jwt.encode(bad, SECRET, algorithm="HS256"))


def test_none_is_never_an_accepted_algorithm() -> None:
    with pytest.raises(ValueError, match="none"):
        TokenVerifier(algorithms=["HS256", "none"], key=SECRET)


def test_rs256_and_es256_with_a_public_key() -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    for private, alg in ((rsa_key, "RS256"), (ec_key, "ES256")):
        public_pem = (
            private.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )
        verifier = TokenVerifier(algorithms=["RS256", "ES256"], key=public_pem)
        assert verifier.verify(jwt.encode(_claims(), private, algorithm=alg)).tenant == "acme"
        # A token signed HS256 with the public key as the secret (algorithm confusion).
        with pytest.raises(TokenError):
            verifier.verify(jwt.encode(_claims(), SECRET, algorithm="HS256"))


@pytest.fixture
def jwks_server() -> Iterator[tuple[str, ec.EllipticCurvePrivateKey]]:
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    body = json.dumps({"keys": [{**jwk, "kid": "k1", "alg": "ES256", "use": "sig"}]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/jwks.json", key
    server.shutdown()
    server.server_close()
    thread.join()


def test_es256_with_jwks(jwks_server: tuple[str, ec.EllipticCurvePrivateKey]) -> None:
    url, key = jwks_server
    verifier = TokenVerifier(algorithms=["ES256"], jwks_url=url)
    token = jwt.encode(_claims(), key, algorithm="ES256", headers={"kid": "k1"})
    assert verifier.verify(token).sub == "u-1"
    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(TokenError):
        verifier.verify(jwt.encode(_claims(), other, algorithm="ES256", headers={"kid": "k1"}))


def test_mint_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="roles"):
        mint_dev_token(secret=SECRET, tenant="acme", user="u-1", roles=["root"])
    with pytest.raises(ValueError, match="tenant"):
        mint_dev_token(secret=SECRET, tenant="Acme Clinic", user="u-1", roles=["admin"])
    assert mint_dev_token(
        secret=SECRET, tenant="acme", user="u-1", roles=["admin"], ttl=timedelta(seconds=60)
    )


def test_roles_the_hub_does_not_know_are_ignored_not_refused() -> None:
    verifier = TokenVerifier(algorithms=["HS256"], key=SECRET)
    for roles, expected in (
        (["nurse", "front_desk"], {"front_desk"}),
        (["superuser"], set()),
        ([], set()),
        ("provider billing", {"provider", "billing"}),  # a space-separated claim
    ):
        token = jwt.encode(_claims(roles=roles), SECRET, algorithm="HS256")
        assert verifier.verify(token).roles == expected, roles
    no_claim = {k: v for k, v in _claims().items() if k != "roles"}
    assert verifier.verify(jwt.encode(no_claim, SECRET, algorithm="HS256")).roles == set()


def test_an_identity_providers_roles_are_mapped_from_a_nested_claim() -> None:
    verifier = TokenVerifier(
        algorithms=["HS256"],
        key=SECRET,
        roles_claim="realm_access.roles",
        role_map={"physician": "provider", "nurse": "front_desk"},
    )
    claims = {k: v for k, v in _claims().items() if k != "roles"}
    claims["realm_access"] = {"roles": ["physician", "nurse", "offline_access"]}
    principal = verifier.verify(jwt.encode(claims, SECRET, algorithm="HS256"))
    assert principal.roles == {"provider", "front_desk"}
    # With a map, only mapped names count: another application's "admin" is not ours.
    claims["realm_access"] = {"roles": ["admin", "service", "nurse"]}
    assert verifier.verify(jwt.encode(claims, SECRET, algorithm="HS256")).roles == {"front_desk"}
    # The top-level claim is not read when another one is configured.
    assert verifier.verify(jwt.encode(_claims(), SECRET, algorithm="HS256")).roles == set()
    with pytest.raises(ValueError, match="roles the hub does not have"):
        TokenVerifier(algorithms=["HS256"], key=SECRET, role_map={"nurse": "root"})
