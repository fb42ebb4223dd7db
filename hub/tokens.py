"""Bearer tokens: verification with a pinned algorithm list, and development minting.

Development signs with HS256 and a secret; production verifies RS256/ES256 against a
configured public key or JWKS. ``none`` is never accepted because the algorithm list
is pinned by configuration, never read from the token.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Mapping
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
        roles_claim: str = "roles",
        role_map: Mapping[str, str] | None = None,
    ) -> None:
        """``roles_claim``: where the token holds its roles, a dotted path for nested
        claims (``realm_access.roles``). ``role_map``: an identity provider's role names
        to the hub's (``{"physician": "provider"}``); when given, only the names it maps
        count (map a hub role to itself to accept it by name). Roles the hub does not
        know are ignored, not refused."""
        unknown = {v for v in (role_map or {}).values() if v not in ROLES}
        if unknown:
            raise ValueError(f"the role map names roles the hub does not have: {sorted(unknown)}")
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
        self._roles_claim = roles_claim.split(".")
        self._role_map = dict(role_map or {})
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
        return _principal(claims, self._roles(claims))

    def _roles(self, claims: dict[str, Any]) -> frozenset[str]:
        """The hub's roles in the token: its role names mapped, unknown ones dropped. A
        missing claim means no role; a claim of another shape is an invalid token."""
        value: Any = claims
        for part in self._roles_claim:
            value = value.get(part) if isinstance(value, dict) else None
        if value is None:
            return frozenset()
        if isinstance(value, str):
            value = value.split()  # a space-separated list, as in OAuth's "scope"
        if not isinstance(value, list) or not all(isinstance(r, str) for r in value):
            raise TokenError("invalid token: the roles claim is not a list of strings")
        if self._role_map:
            # With a map, only the names it maps count: an identity provider's "admin"
            # of another application must not become the hub's admin by its name.
            return frozenset(self._role_map[r] for r in value if r in self._role_map)
        return frozenset(r for r in value if r in ROLES)


def _principal(claims: dict[str, Any], roles: frozenset[str]) -> Principal:
    sub, tenant = claims.get("sub"), claims.get("tenant")
    if not isinstance(sub, str) or not _SUB_RE.fullmatch(sub):
        raise TokenError("invalid token: bad 'sub' claim")
    try:
        validate_tenant(tenant)  # type: ignore[arg-type]
    except ValueError:
        raise TokenError("invalid token: bad 'tenant' claim") from None
    return Principal(
        sub=sub,
        tenant=str(tenant),
        roles=roles,
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
