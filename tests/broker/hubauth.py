"""A real Mosquitto with Dynamic Security and the hub-auth token plugin, and the api's
side of the contract: ES256 signing keys, their JWKS file, and signed broker tokens."""

from __future__ import annotations

import base64
import getpass
import hashlib
import hmac
import json
import secrets
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from hub.mosquitto import (
    ADMIN_USERNAME,
    MosquittoProcess,
    dynsec_password_fields,
    find_dynsec_plugin,
    write_dynsec_file,
)
from tests.support.mqtt import WAIT, Probe
from tests.support.stack import free_port

ROOT = Path(__file__).resolve().parents[2]
PLUGIN_DIR = ROOT / "broker-config" / "plugin"
PLUGIN_SO = PLUGIN_DIR / "build" / "hub_auth.so"
ISSUER = "ehr-hub"
CONTROL = "$CONTROL/hub-auth/v1"
CONTROL_RESPONSE = "$CONTROL/hub-auth/v1/response"
PUBLISHER = "hub-service"

# Plugin load orders the core tests run under.
ORDERS = ("token-first", "dynsec-first")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class SigningKey:
    kid: str
    private: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )

    def jwk(self) -> dict[str, str]:
        numbers = self.private.public_key().public_numbers()
        return {
            "kty": "EC",
            "crv": "P-256",
            "kid": self.kid,
            "x": b64url(numbers.x.to_bytes(32, "big")),
            "y": b64url(numbers.y.to_bytes(32, "big")),
            "alg": "ES256",
            "use": "sig",
        }

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def rule(permission: str, action: str, topic: str) -> dict[str, str]:
    return {"permission": permission, "action": action, "topic": topic}


def session_acl(tenant: str, user: str, *allowed: str) -> list[dict[str, str]]:
    """A browser session's acl as the api writes it: the allowed subscriptions, the
    user's own notifications, then a deny of everything."""
    subs = allowed or (f"tenants/{tenant}/patients/#",)
    return [
        *(rule("allow", "subscribe", t) for t in subs),
        rule("allow", "subscribe", f"tenants/{tenant}/users/{user}/#"),
        rule("deny", "all", "#"),
    ]


@dataclass
class Token:
    clientid: str
    username: str
    value: str
    claims: dict[str, Any]


def hs256_with_public_key(key: SigningKey, claims: dict[str, Any]) -> str:
    """The classic algorithm confusion: HS256 keyed with the verifier's public key."""
    head = b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": key.kid}).encode())
    body = b64url(json.dumps(claims).encode())
    mac = hmac.new(key.public_pem(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64url(mac)}"


class HubBroker:
    """Mosquitto with both plugins on free loopback ports (TCP and WebSocket on `lo`)."""

    def __init__(self, data_dir: Path, *, order: str = "token-first") -> None:
        self.data_dir = data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        self.order = order
        self.keys_file = data_dir / "jwks.json"
        self.revocations_file = data_dir / "revocations.json"
        self.sessions_file = data_dir / "hub-auth-sessions"
        self.dynsec_file = data_dir / "dynamic-security.json"
        self.admin_password = secrets.token_urlsafe(24)
        self.publisher_password = secrets.token_urlsafe(24)
        self.keys = [SigningKey("k1")]
        self.write_jwks(self.keys)
        self._write_dynsec()
        self.mqtt_port = free_port()
        self.ws_port = free_port()
        self.config_file = data_dir / "mosquitto.conf"
        self.config_file.write_text(self._config(), encoding="utf-8")
        self.process = MosquittoProcess(
            self.config_file,
            mqtt_port=self.mqtt_port,
            ws_port=self.ws_port,
            log_file=data_dir / "broker.log",
        )

    # ---- files ----
    def write_jwks(self, keys: list[SigningKey]) -> None:
        """Atomically, as the api does."""
        tmp = self.keys_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"keys": [k.jwk() for k in keys]}), encoding="utf-8")
        tmp.replace(self.keys_file)

    def _write_dynsec(self) -> None:
        write_dynsec_file(self.dynsec_file, self.admin_password)
        state = json.loads(self.dynsec_file.read_text(encoding="utf-8"))
        admin_role = next(r for r in state["roles"] if r["rolename"] == "hub.admin")
        admin_role["acls"] += [
            {"acltype": "publishClientSend", "topic": "$CONTROL/hub-auth/#", "allow": True},
            {"acltype": "publishClientReceive", "topic": "$CONTROL/hub-auth/#", "allow": True},
            {"acltype": "subscribePattern", "topic": "$CONTROL/hub-auth/#", "allow": True},
        ]
        state["roles"].append(
            {
                "rolename": "hub.publisher",
                "acls": [{"acltype": "publishClientSend", "topic": "tenants/#", "allow": True}],
            }
        )
        state["clients"].append(
            {
                "username": PUBLISHER,
                **dynsec_password_fields(self.publisher_password, iterations=1000),
                "roles": [{"rolename": "hub.publisher"}],
            }
        )
        self.dynsec_file.write_text(json.dumps(state), encoding="utf-8")

    def _config(self) -> str:
        token = [
            f"plugin {PLUGIN_SO}",
            f"plugin_opt_keys_file {self.keys_file}",
            f"plugin_opt_revocations_file {self.revocations_file}",
            f"plugin_opt_sessions_file {self.sessions_file}",
            f"plugin_opt_issuer {ISSUER}",
        ]
        dynsec = [
            f"plugin {find_dynsec_plugin()}",
            f"plugin_opt_config_file {self.dynsec_file}",
        ]
        plugins = token + dynsec if self.order == "token-first" else dynsec + token
        return "\n".join(
            [
                f"include_dir {ROOT / 'broker-config' / 'conf.d'}",
                f"user {getpass.getuser()}",
                *plugins,
                f"persistence_location {self.data_dir}/",
                "log_dest stderr",
                "log_type information",
                f"listener {self.mqtt_port} 127.0.0.1",
                f"listener {self.ws_port} lo",
                "protocol websockets",
                "",
            ]
        )

    # ---- process ----
    def start(self) -> None:
        self.process.start()

    def stop(self) -> None:
        self.process.stop()

    def restart(self) -> None:
        self.stop()
        self.start()

    def kill(self) -> None:
        """SIGKILL: a crash."""
        self.process.kill()

    def log(self) -> str:
        return (self.data_dir / "broker.log").read_text(encoding="utf-8", errors="replace")

    # ---- tokens ----
    def claims(
        self,
        *,
        clientid: str | None = None,
        username: str | None = None,
        tenant: str = "a",
        lifetime: float = 300,
        **overrides: Any,
    ) -> dict[str, Any]:
        """Valid claims; an override of None leaves that claim out."""
        now = int(time.time())
        user = username or f"u-{uuid.uuid4().hex[:6]}"
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "aud": "mqtt",
            "sub": user,
            "tenant": tenant,
            "kind": "session",
            "clientid": clientid or f"{tenant}.{user}.{uuid.uuid4().hex[:4]}",
            "username": user,
            "jti": uuid.uuid4().hex,
            "iat": now,
            "nbf": now,
            "exp": int(now + lifetime),
            "acl": session_acl(tenant, user),
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def sign(self, claims: dict[str, Any], key: SigningKey | None = None, **headers: Any) -> str:
        key = key or self.keys[0]
        return jwt.encode(
            claims, key.private, algorithm="ES256", headers={"kid": key.kid, **headers}
        )

    def token(self, key: SigningKey | None = None, **kwargs: Any) -> Token:
        claims = self.claims(**kwargs)
        return Token(claims["clientid"], claims["username"], self.sign(claims, key), claims)

    # ---- clients ----
    def probe(
        self, token: Token, *, transport: str = "tcp", clean_start: bool = True, **kw: Any
    ) -> Probe:
        port = self.ws_port if transport == "websockets" else self.mqtt_port
        return Probe(
            client_id=kw.pop("client_id", token.clientid),
            username=kw.pop("username", token.username),
            password=kw.pop("password", token.value),
            port=port,
            transport=transport,
            clean_start=clean_start,
            **kw,
        )

    def admin(self) -> Probe:
        return Probe(
            client_id=f"admin-{uuid.uuid4().hex[:6]}",
            username=ADMIN_USERNAME,
            password=self.admin_password,
            port=self.mqtt_port,
        )

    def publisher(self) -> Probe:
        return Probe(
            client_id=f"pub-{uuid.uuid4().hex[:6]}",
            username=PUBLISHER,
            password=self.publisher_password,
            port=self.mqtt_port,
        )


def control(admin: Probe, *commands: dict[str, Any]) -> list[dict[str, Any]]:
    """Send hub-auth commands as ``admin`` (already subscribed to the response topic)."""
    corr = uuid.uuid4().hex
    body = {"commands": [{**c, "correlationData": f"{corr}:{i}"} for i, c in enumerate(commands)]}
    assert not admin.publish(CONTROL, json.dumps(body)).is_failure
    reply = admin.wait_for(lambda m: m.topic == CONTROL_RESPONSE and corr.encode() in m.payload)
    return reply.json()["responses"]  # type: ignore[no-any-return]


def wait_until(predicate: Any, timeout: float = WAIT, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
