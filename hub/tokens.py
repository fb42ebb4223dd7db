"""Bearer tokens: verification with a pinned algorithm list, and development minting.

Development signs with HS256 and a secret; production verifies RS256/ES256 against a
configured public key or JWKS. ``none`` is never accepted because the algorithm list
is pinned by configuration, never read from the token.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import jwt

from hub.errors import TokenError
from hub.topics import validate_tenant

Role = Literal["front_desk", "provider", "billing", "admin", "service"]
ROLES: frozenset[str] = frozenset({"front_desk", "provider", "billing", "admin", "service"})
_SUB_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the verified claims of a token."""

    sub: str
    tenant: str
    roles: frozenset[str]
    expires_at: datetime

    def has_any(self, *roles: str) -> bool:
        return bool(self.roles.intersection(roles))


class TokenVerifier:
    """Verifies bearer tokens; remembers verified ones (see ``cached``)."""

    # A token verified once is trusted until its exp, but for at most this long, so a
    # key withdrawn from the JWKS stops working within minutes. Bounded in entries.
    CACHE_SECONDS = 300.0
    CACHE_ENTRIES = 10_000

    def __init__(
        self,
        *,
        algorithms: list[str],
        key: Any = None,
        jwks_url: str | None = None,
        issuer: str | None = None,
        audience: str | None = None,
        leeway: float = 0.0,
    ) -> None:
        if not algorithms or any(a.lower() == "none" for a in algorithms):
            raise ValueError("a non-empty algorithm list without 'none' is required")
        if (key is None) == (jwks_url is None):
            raise ValueError("exactly one of key and jwks_url is required")
        self._algorithms = list(algorithms)
        self._key = key
        self._jwks = jwt.PyJWKClient(jwks_url, cache_keys=True) if jwks_url else None
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway
        self._cache: dict[str, tuple[float, Principal]] = {}
        self._cache_lock = threading.Lock()

    def cached(self, token: str) -> Principal | None:
        """The principal of a token verified recently and not expired since, or None.
        Verifying a signature costs more than the rest of a small request."""
        entry = self._cache.get(token)
        if entry is None:
            return None
        until, principal = entry
        if time.time() >= until:
            with self._cache_lock:
                self._cache.pop(token, None)
            return None
        return principal

    def verify(self, token: str) -> Principal:
        principal = self.cached(token)
        if principal is not None:
            return principal
        principal = self._verify(token)
        until = min(
            principal.expires_at.timestamp() + self._leeway, time.time() + self.CACHE_SECONDS
        )
        with self._cache_lock:
            if len(self._cache) >= self.CACHE_ENTRIES:
                # Drop the older half (dicts keep insertion order).
                for stale in list(self._cache)[: self.CACHE_ENTRIES // 2]:
                    del self._cache[stale]
            self._cache[token] = (until, principal)
        return principal

    def _verify(self, token: str) -> Principal:
        try:
            key = self._jwks.get_signing_key_from_jwt(token).key if self._jwks else self._key
            options: Any = {
                "require": ["exp", "sub"],
                "verify_aud": bool(self._audience),
            }
            if self._issuer:
                options["require"].append("iss")
            if self._audience:
                options["require"].append("aud")
            claims = jwt.decode(
                token,
                key,
                algorithms=self._algorithms,
                issuer=self._issuer,
                audience=self._audience,
                leeway=self._leeway,
                options=options,
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("token expired") from None
        except jwt.PyJWTError as exc:
            raise TokenError(f"invalid token: {exc}") from None
        return _principal(claims)


def _principal(claims: dict[str, Any]) -> Principal:
    sub, tenant, roles = claims.get("sub"), claims.get("tenant"), claims.get("roles")
    if not isinstance(sub, str) or not _SUB_RE.fullmatch(sub):
        raise TokenError("invalid token: bad 'sub' claim")
    try:
        validate_tenant(tenant)  # type: ignore[arg-type]
    except ValueError:
        raise TokenError("invalid token: bad 'tenant' claim") from None
    if (
        not isinstance(roles, list)
        or not roles
        or not all(isinstance(r, str) and r in ROLES for r in roles)
    ):
        raise TokenError("invalid token: 'roles' must be a non-empty list of known roles")
    return Principal(
        sub=sub,
        tenant=str(tenant),
        roles=frozenset(roles),
        expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
    )


def mint_dev_token(
    *,
    secret: str,
    tenant: str,
    user: str,
    roles: list[str],
    ttl: timedelta = timedelta(hours=8),
    issuer: str | None = None,
    audience: str | None = None,
) -> str:
    """An HS256 token for development and tests."""
    validate_tenant(tenant)
    if not _SUB_RE.fullmatch(user):
        raise ValueError(f"invalid user id {user!r}")
    unknown = set(roles) - ROLES
    if unknown or not roles:
        raise ValueError(f"unknown roles: {sorted(unknown)}" if unknown else "no roles")
    now = datetime.now(UTC)
    claims: dict[str, Any] = {
        "sub": user,
        "tenant": tenant,
        "roles": roles,
        "iat": int(now.timestamp()),
        "exp": int((now + ttl).timestamp()),
    }
    if issuer:
        claims["iss"] = issuer
    if audience:
        claims["aud"] = audience
    return jwt.encode(claims, secret, algorithm="HS256")
