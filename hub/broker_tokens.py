"""Broker credentials as signed tokens (ES256 JWTs) that Mosquitto's token plugin
(broker-config/plugin) verifies by itself.

The api holds the private keys; the broker reads only a JWKS file of public keys.
Keys live as PEM files in one directory, named so that the newest sorts last: it
signs, the older ones stay in the JWKS until every token they could have signed has
expired, then they are deleted. Several api processes share the directory (or one
configured key file), so each of them signs tokens that the broker accepts.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import itertools
import json
import os
import secrets
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from hub.errors import TokenError
from hub.topics import (
    kiosk_requests_topic,
    kiosk_responses_topic,
    meta_filter,
    patients_filter,
    user_filter,
    validate_tenant,
)

Kind = Literal["session", "kiosk", "partner"]
AUDIENCE = "mqtt"
ALGORITHM = "ES256"
# The plugin refuses longer passwords and longer acls (broker-config/plugin).
MAX_TOKEN_BYTES = 4096
MAX_ACL_RULES = 64
# The plugin reads at most this many keys from the JWKS.
MAX_KEYS = 16


@dataclass(frozen=True, slots=True)
class AclRule:
    """One rule of a token's ``acl`` claim, in EMQX 5's rule-list form."""

    permission: Literal["allow", "deny"]
    action: Literal["publish", "subscribe", "all"]
    topic: str

    def as_json(self) -> dict[str, str]:
        return {"permission": self.permission, "action": self.action, "topic": self.topic}


DENY_ALL = AclRule("deny", "all", "#")


def session_acl(tenant: str, user_id: str) -> tuple[AclRule, ...]:
    """A browser session reads its tenant's patient and meta topics and its own
    user subtree; it publishes nothing."""
    return (
        AclRule("allow", "subscribe", patients_filter(tenant)),
        AclRule("allow", "subscribe", meta_filter(tenant)),
        AclRule("allow", "subscribe", user_filter(tenant, user_id)),
        DENY_ALL,
    )


def notifications_acl(tenant: str, user_id: str) -> tuple[AclRule, ...]:
    """A session of a user with no role of the hub: its own notifications only."""
    return (AclRule("allow", "subscribe", user_filter(tenant, user_id)), DENY_ALL)


def kiosk_acl(tenant: str, kiosk_id: str) -> tuple[AclRule, ...]:
    """A kiosk publishes its requests and reads its responses: nothing else."""
    return (
        AclRule("allow", "publish", kiosk_requests_topic(tenant, kiosk_id).value),
        AclRule("allow", "subscribe", kiosk_responses_topic(tenant, kiosk_id).value),
        DENY_ALL,
    )


def _b64url_uint(value: int, size: int) -> str:
    return base64.urlsafe_b64encode(value.to_bytes(size, "big")).rstrip(b"=").decode()


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str
    private_key: ec.EllipticCurvePrivateKey
    created: str  # sortable name part; the newest key signs

    @classmethod
    def from_pem(cls, pem: bytes, *, created: str = "") -> SigningKey:
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(
            key.curve, ec.SECP256R1
        ):
            raise ValueError("a broker signing key must be an EC P-256 private key")
        der = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        # Derived from the public key, so every process that holds the key agrees.
        kid = hashlib.sha256(der).hexdigest()[:16]
        return cls(kid=kid, private_key=key, created=created)

    def public_jwk(self) -> dict[str, str]:
        numbers = self.private_key.public_key().public_numbers()
        return {
            "kty": "EC",
            "crv": "P-256",
            "kid": self.kid,
            "use": "sig",
            "alg": ALGORITHM,
            "x": _b64url_uint(numbers.x, 32),
            "y": _b64url_uint(numbers.y, 32),
        }


def write_atomically(path: Path, text: str, *, mode: int = 0o644) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename, so a reader
    (the broker's plugin) never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)


class KeyRing:
    """The signing keys: the newest published one signs, older ones verify until
    they retire.

    ``directory`` holds ``key-<UTC time>.pem`` files (one is generated on first use);
    ``key_file`` instead names one configured PEM file, shared by every api process.

    A new key signs only ``activation_seconds`` after it appeared, and by then every
    process that noticed it has written the JWKS (``jwks_file``), so the broker knows a
    key before any token of it arrives. A key retires when a newer one becomes active,
    and is deleted once every token it signed has expired (``max_token_lifetime``, plus
    the time other processes may take to notice the newer key). Processes sharing the
    directory serialise their changes with a lock file and look at it again every
    ``refresh_seconds``.
    """

    def __init__(
        self,
        *,
        directory: Path | None = None,
        key_file: Path | None = None,
        jwks_file: Path | None = None,
        max_token_lifetime: timedelta = timedelta(days=1),
        refresh_seconds: float = 60.0,
        activation_seconds: float = 10.0,
    ) -> None:
        if (directory is None) == (key_file is None):
            raise ValueError("exactly one of directory and key_file is required")
        self._directory = directory
        self._key_file = key_file
        self._jwks_file = jwks_file
        self.max_token_lifetime = max_token_lifetime
        self._refresh = refresh_seconds
        self._activation = timedelta(seconds=activation_seconds)
        self._keys: list[SigningKey] = []
        self._loaded_at = 0.0
        self.reload()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[Path]:
        assert self._directory is not None
        self._directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self._directory / ".lock", "a+b") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield self._directory
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def reload(self) -> None:
        """Read the keys again (generating the first one if there is none), and write
        the JWKS when the set of keys changed."""
        if self._key_file is not None:
            keys = [SigningKey.from_pem(self._key_file.read_bytes())]
            changed = [k.kid for k in keys] != [k.kid for k in self._keys]
            self._keys = keys
            if changed and self._jwks_file is not None:
                write_atomically(self._jwks_file, self._jwks_text())
        else:
            with self._locked() as directory:
                keys = _load_directory(directory)
                if not keys:
                    _generate(directory, datetime.now(UTC))
                    keys = _load_directory(directory)
                changed = [k.kid for k in keys] != [k.kid for k in self._keys]
                self._keys = keys
                if changed and self._jwks_file is not None:
                    write_atomically(self._jwks_file, self._jwks_text())
        self._loaded_at = time.monotonic()

    def _fresh(self) -> list[SigningKey]:
        if time.monotonic() - self._loaded_at > self._refresh:
            self.reload()
        return self._keys

    @property
    def active(self) -> SigningKey:
        keys = self._fresh()
        if self._key_file is not None:
            return keys[-1]
        now = datetime.now(UTC)
        ready = [k for k in keys if _created(k) + self._activation <= now]
        # The very first key signs at once: nothing has been published before it.
        return ready[-1] if ready else keys[0]

    @property
    def keys(self) -> Sequence[SigningKey]:
        return tuple(self._fresh())

    def rotate(self, *, now: datetime | None = None) -> SigningKey:
        """Generate a new signing key (directory mode only), delete retired keys whose
        tokens have all expired, and write the JWKS. The new key signs once
        ``activation_seconds`` have passed."""
        if self._directory is None:
            raise ValueError("a configured key file is rotated by replacing the file")
        now = now or datetime.now(UTC)
        # Tokens signed by a key until every process noticed its successor.
        margin = self.max_token_lifetime + self._activation + timedelta(seconds=self._refresh)
        with self._locked() as directory:
            keys = _load_directory(directory)
            for older, newer in itertools.pairwise(keys):
                if _created(newer) + margin < now:
                    (directory / f"key-{older.created}.pem").unlink(missing_ok=True)
            if len(_load_directory(directory)) >= MAX_KEYS:
                raise ValueError(
                    f"{MAX_KEYS} keys are still in use (the broker reads at most that many); "
                    "rotate again once the oldest have retired"
                )
            _generate(directory, now)
            self._keys = _load_directory(directory)
            if self._jwks_file is not None:
                write_atomically(self._jwks_file, self._jwks_text())
        self._loaded_at = time.monotonic()
        return self._keys[-1]

    def jwks(self) -> dict[str, Any]:
        # Newest first: a reader that keeps only the first keys keeps the signing ones.
        return {"keys": [k.public_jwk() for k in reversed(self._fresh())]}

    def _jwks_text(self) -> str:
        return json.dumps({"keys": [k.public_jwk() for k in reversed(self._keys)]}, indent=2)

    def write_jwks(self, path: Path) -> None:
        """Publish the public keys (as the directory holds them now) where the
        broker's plugin reads them."""
        if self._directory is None:
            write_atomically(path, self._jwks_text() + "\n")
            return
        with self._locked() as directory:
            self._keys = _load_directory(directory) or self._keys
            write_atomically(path, self._jwks_text() + "\n")
        self._loaded_at = time.monotonic()


_CREATED_FORMAT = "%Y%m%dT%H%M%S%fZ"


def _created(key: SigningKey) -> datetime:
    return datetime.strptime(key.created, _CREATED_FORMAT).replace(tzinfo=UTC)


def _load_directory(directory: Path) -> list[SigningKey]:
    files = sorted(directory.glob("key-*.pem"))
    return [SigningKey.from_pem(f.read_bytes(), created=f.stem[4:]) for f in files]


def _generate(directory: Path, now: datetime) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path = directory / f"key-{now.strftime(_CREATED_FORMAT)}.pem"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
        fh.flush()
        os.fsync(fh.fileno())


@dataclass(frozen=True, slots=True)
class BrokerToken:
    token: str
    jti: str
    issued_at: datetime
    expires_at: datetime


class TokenSigner:
    """Signs broker tokens with the key ring's active key."""

    def __init__(self, ring: KeyRing, *, issuer: str) -> None:
        if not issuer:
            raise ValueError("an issuer is required")
        self._ring = ring
        self._issuer = issuer

    @property
    def issuer(self) -> str:
        return self._issuer

    @property
    def ring(self) -> KeyRing:
        return self._ring

    def sign(
        self,
        *,
        kind: Kind,
        tenant: str,
        sub: str,
        client_id: str,
        username: str,
        expires_at: datetime,
        acl: Sequence[AclRule],
        now: datetime | None = None,
    ) -> BrokerToken:
        validate_tenant(tenant)
        if not acl or acl[-1] != DENY_ALL:
            raise ValueError("a token's acl must end with a deny of everything")
        if len(acl) > MAX_ACL_RULES:
            raise ValueError(f"at most {MAX_ACL_RULES} acl rules")
        now = now or datetime.now(UTC)
        iat = int(now.timestamp())
        if int(expires_at.timestamp()) <= iat:
            raise ValueError("the token would already be expired")
        if expires_at - now > self._ring.max_token_lifetime:
            raise ValueError("the token would outlive its signing key's retirement")
        jti = secrets.token_urlsafe(12)
        claims: dict[str, Any] = {
            "iss": self._issuer,
            "aud": AUDIENCE,
            "sub": sub,
            "tenant": tenant,
            "kind": kind,
            "clientid": client_id,
            "username": username,
            "jti": jti,
            "iat": iat,
            "nbf": iat,
            "exp": int(expires_at.timestamp()),
            "acl": [r.as_json() for r in acl],
        }
        key = self._ring.active
        token = jwt.encode(
            claims, key.private_key, algorithm=ALGORITHM, headers={"kid": key.kid, "typ": "JWT"}
        )
        if len(token) > MAX_TOKEN_BYTES:
            raise ValueError("the token is longer than the broker accepts")
        return BrokerToken(
            token=token,
            jti=jti,
            issued_at=datetime.fromtimestamp(iat, UTC),
            expires_at=datetime.fromtimestamp(claims["exp"], UTC),
        )


# Access tokens: what a partner shows ``GET /events``. Signed by the same keys as broker
# tokens but for another audience, so neither is accepted where the other belongs.
ACCESS_AUDIENCE = "hub-events"


@dataclass(frozen=True, slots=True)
class AccessClaims:
    sub: str
    tenant: str
    kind: Kind
    jti: str
    expires_at: datetime


def sign_access_token(
    signer: TokenSigner,
    *,
    kind: Kind,
    tenant: str,
    sub: str,
    expires_at: datetime,
    now: datetime | None = None,
) -> BrokerToken:
    """An access token for the hub's HTTP api (``GET /events``), as long-lived as the
    broker credentials it comes with."""
    validate_tenant(tenant)
    now = now or datetime.now(UTC)
    iat = int(now.timestamp())
    if int(expires_at.timestamp()) <= iat:
        raise ValueError("the token would already be expired")
    jti = secrets.token_urlsafe(12)
    exp = int(expires_at.timestamp())
    claims = {
        "iss": signer.issuer,
        "aud": ACCESS_AUDIENCE,
        "sub": sub,
        "tenant": tenant,
        "kind": kind,
        "jti": jti,
        "iat": iat,
        "nbf": iat,
        "exp": exp,
    }
    key = signer.ring.active
    token = jwt.encode(
        claims, key.private_key, algorithm=ALGORITHM, headers={"kid": key.kid, "typ": "JWT"}
    )
    return BrokerToken(
        token=token,
        jti=jti,
        issued_at=datetime.fromtimestamp(iat, UTC),
        expires_at=datetime.fromtimestamp(exp, UTC),
    )


def is_access_token(token: str) -> bool:
    """Whether ``token`` claims to be one of our access tokens (not verified: only
    which verifier to use)."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return False
    return claims.get("aud") == ACCESS_AUDIENCE


class AccessTokenVerifier:
    """Verifies access tokens against the key ring's public keys: ES256 only, our
    issuer and audience, ``exp`` required."""

    # A kid this process does not know yet may come from a key another process just
    # made: look at the directory again, but not more often than this.
    RELOAD_SECONDS = 5.0

    def __init__(self, ring: KeyRing, *, issuer: str) -> None:
        self._ring = ring
        self._issuer = issuer
        self._reloaded = 0.0

    def _key(self, kid: object) -> ec.EllipticCurvePublicKey | None:
        for key in self._ring.keys:
            if key.kid == kid:
                return key.private_key.public_key()
        if time.monotonic() - self._reloaded > self.RELOAD_SECONDS:
            self._reloaded = time.monotonic()
            self._ring.reload()
            for key in self._ring.keys:
                if key.kid == kid:
                    return key.private_key.public_key()
        return None

    def verify(self, token: str) -> AccessClaims:
        """The claims of a valid access token; ``TokenError`` otherwise."""
        try:
            header = jwt.get_unverified_header(token)
            key = self._key(header.get("kid"))
            if key is None:
                raise TokenError("invalid token: unknown key")
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                issuer=self._issuer,
                audience=ACCESS_AUDIENCE,
                options={"require": ["exp", "sub", "iss", "aud", "jti"]},
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("token expired") from None
        except jwt.PyJWTError as exc:
            raise TokenError(f"invalid token: {exc}") from None
        sub, tenant, kind = claims.get("sub"), claims.get("tenant"), claims.get("kind")
        if not isinstance(sub, str) or not isinstance(tenant, str) or kind != "partner":
            raise TokenError("invalid token: bad claims")
        try:
            validate_tenant(tenant)
        except ValueError:
            raise TokenError("invalid token: bad 'tenant' claim") from None
        return AccessClaims(
            sub=sub,
            tenant=tenant,
            kind="partner",
            jti=str(claims["jti"]),
            expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
        )
