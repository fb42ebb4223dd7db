"""Running Mosquitto locally: first-start state (dynsec file, generated secrets), the
generated configuration, and the broker process itself."""

from __future__ import annotations

import base64
import getpass
import hashlib
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from hub.broker_admin import Acl, Role
from hub.secretfiles import load_or_create_secret
from hub.tls import TlsFiles

ADMIN_USERNAME = "hub-admin"
# The `iss` of broker tokens, unless HUB_BROKER_TOKEN_ISSUER says otherwise.
DEFAULT_TOKEN_ISSUER = "ehr-hub"
SERVICE_USERNAME = "hub-service"
_PLUGIN_CANDIDATES = (
    "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so",
    "/usr/lib/aarch64-linux-gnu/mosquitto_dynamic_security.so",
    "/usr/lib/mosquitto_dynamic_security.so",
)


def default_broker_config_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "broker-config"


def find_auth_plugin(explicit: str | None = None) -> str:
    """The hub's token plugin, built from broker-config/plugin by the set-up scripts."""
    if explicit:
        return explicit
    built = default_broker_config_dir() / "plugin" / "build" / "hub_auth.so"
    if built.exists():
        return str(built)
    raise FileNotFoundError(
        f"{built} not found: build it with `make -C broker-config/plugin` "
        "(scripts/setup.sh does) or set HUB_BROKER_AUTH_PLUGIN"
    )


@dataclass(frozen=True, slots=True)
class BrokerSecrets:
    admin_password: str
    service_password: str


@dataclass(frozen=True, slots=True)
class BrokerLayout:
    """Where the broker's state lives under the data directory."""

    data_dir: Path

    @property
    def state_dir(self) -> Path:
        return self.data_dir / "broker"

    @property
    def dynsec_file(self) -> Path:
        return self.state_dir / "dynamic-security.json"

    @property
    def config_file(self) -> Path:
        return self.state_dir / "mosquitto.conf"

    @property
    def jwks_file(self) -> Path:
        """The public keys of broker tokens: written by the api, read by the plugin."""
        return self.state_dir / "jwks.json"

    @property
    def revocations_file(self) -> Path:
        """The token plugin's revocation list (the plugin writes it)."""
        return self.state_dir / "revocations.json"

    @property
    def sessions_file(self) -> Path:
        """The tokens of persistent sessions, so their queues keep filling across a
        broker restart (the plugin writes it, mode 0600: tokens are credentials)."""
        return self.state_dir / "hub-auth-sessions"

    @property
    def secrets_dir(self) -> Path:
        return self.data_dir / "secrets"

    def secrets(self) -> BrokerSecrets:
        return BrokerSecrets(
            admin_password=load_or_create_secret(self.secrets_dir / "dynsec-admin"),
            service_password=load_or_create_secret(self.secrets_dir / "hub-service"),
        )


def find_dynsec_plugin(explicit: str | None = None) -> str:
    if explicit:
        return explicit
    for candidate in _PLUGIN_CANDIDATES:
        if Path(candidate).exists():
            return candidate
    raise FileNotFoundError("mosquitto_dynamic_security.so not found; install mosquitto")


def _control(topic: str) -> tuple[Acl, ...]:
    return (
        Acl("publishClientSend", topic),
        Acl("publishClientReceive", topic),
        Acl("subscribePattern", topic),
    )


# The admin role the hub needs: drive Dynamic Security and the token plugin (its
# revocations) over $CONTROL, and read $SYS (health checks). Unlike
# `mosquitto_ctrl dynsec init`, it does not read `#`: no tenant's events.
ADMIN_ROLE = Role(
    "hub.admin",
    (
        *_control("$CONTROL/dynamic-security/#"),
        *_control("$CONTROL/hub-auth/#"),
        Acl("publishClientReceive", "$SYS/#"),
        Acl("subscribePattern", "$SYS/#"),
        Acl("unsubscribePattern", "#"),
    ),
)
# The relay publishes every tenant's events. The kiosk responder (same account) reads
# kiosks' requests through a shared subscription and answers on their response topics.
# Mosquitto 2.0.11 checks a SUBSCRIBE to `$share/<group>/<filter>` against the whole
# string, prefix included (tests/broker/test_shared_subscription_acl.py), and each
# delivery against the topic; the plain filter is there for brokers that strip it.
KIOSK_SHARE_GROUP = "hub-kiosk"
SERVICE_ROLE = Role(
    "hub.service",
    (
        Acl("publishClientSend", "tenants/#"),
        Acl("subscribePattern", f"$share/{KIOSK_SHARE_GROUP}/tenants/+/kiosks/+/requests"),
        Acl("subscribePattern", "tenants/+/kiosks/+/requests"),
        Acl("publishClientReceive", "tenants/+/kiosks/+/requests"),
    ),
)
_ADMIN_PBKDF2_ITERATIONS = 20_000


def dynsec_password_fields(password: str, *, iterations: int) -> dict[str, object]:
    """A dynsec client's password as Mosquitto stores it: PBKDF2-HMAC-SHA512, 64 bytes,
    over a random 12-byte salt, both base64."""
    salt = os.urandom(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, 64)
    return {
        "password": base64.b64encode(digest).decode(),
        "salt": base64.b64encode(salt).decode(),
        "iterations": iterations,
    }


def write_dynsec_file(
    path: Path, admin_password: str, *, admin_username: str = ADMIN_USERNAME
) -> None:
    """Create the Dynamic Security file: the admin account, nothing else, and a default
    ACL access that denies all but unsubscribing.

    Written here rather than by `mosquitto_ctrl dynsec init`, which takes the password
    on its command line (visible to every local user) and lets the admin read every
    topic. Restrictive from the start: no client ever runs under the plugin's
    permissive receive default.
    """
    state = {
        "defaultACLAccess": {
            "publishClientSend": False,
            "publishClientReceive": False,
            "subscribe": False,
            "unsubscribe": True,
        },
        "clients": [
            {
                "username": admin_username,
                "textName": "hub broker administration",
                **dynsec_password_fields(admin_password, iterations=_ADMIN_PBKDF2_ITERATIONS),
                "roles": [{"rolename": ADMIN_ROLE.name}],
            }
        ],
        "groups": [],
        "roles": [{"rolename": ADMIN_ROLE.name, "acls": [a.as_json() for a in ADMIN_ROLE.acls]}],
    }
    tmp = path.with_suffix(".init")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(state, fh, indent=2)
    tmp.replace(path)


def prepare_broker_state(
    layout: BrokerLayout,
    *,
    admin_username: str = ADMIN_USERNAME,
    admin_password: str | None = None,
) -> BrokerSecrets:
    """First start: generate the secrets and the dynsec file with the admin account
    (a configured admin password wins over the generated one)."""
    layout.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    secrets = layout.secrets()
    if admin_password:
        secrets = BrokerSecrets(admin_password, secrets.service_password)
    if not layout.dynsec_file.exists():
        write_dynsec_file(layout.dynsec_file, secrets.admin_password, admin_username=admin_username)
    return secrets


def render_config(
    layout: BrokerLayout,
    *,
    mqtt_port: int,
    ws_port: int,
    bind_host: str = "127.0.0.1",
    config_dir: Path | None = None,
    plugin: str | None = None,
    auth_plugin: str | None = None,
    token_issuer: str = DEFAULT_TOKEN_ISSUER,
    jwks_file: Path | None = None,
    token_plugin: bool = True,
    tls: TlsFiles | None = None,
) -> Path:
    """Write the local broker configuration and return its path.

    Two plugins: the hub's token plugin first (it answers for tokens and defers
    everything else at once), then Dynamic Security for the hub's own accounts.
    ``token_plugin=False`` leaves the first out (benchmarks of the old design). With
    ``tls``, both listeners serve TLS only (TLS 1.2 at least) with that certificate."""
    config_dir = config_dir or default_broker_config_dir()
    # The WebSocket listener of 2.0 ignores an IP bind address (#2085) but honours an
    # interface name, so loopback-only deployments bind it to `lo`.
    ws_bind = "lo" if _loopback(bind_host) else ""
    tcp_bind = "" if bind_host in ("0.0.0.0", "") else bind_host  # noqa: S104 - "" is all
    # Listener options: they follow each listener line.
    tls_lines = (
        [f"certfile {tls.cert_file}", f"keyfile {tls.key_file}", "tls_version tlsv1.2"]
        if tls is not None
        else []
    )
    lines = [
        "# Written by `hub` from broker-config/; edit those files, not this one.",
        f"include_dir {config_dir / 'conf.d'}",
        # Run as the invoking user so the state folder needs no chown.
        f"user {getpass.getuser()}",
        *(
            [
                f"plugin {find_auth_plugin(auth_plugin)}",
                f"plugin_opt_keys_file {jwks_file or layout.jwks_file}",
                f"plugin_opt_revocations_file {layout.revocations_file}",
                f"plugin_opt_sessions_file {layout.sessions_file}",
                f"plugin_opt_issuer {token_issuer}",
            ]
            if token_plugin
            else []
        ),
        f"plugin {find_dynsec_plugin(plugin)}",
        f"plugin_opt_config_file {layout.dynsec_file}",
        f"persistence_location {layout.state_dir}/",
        "log_dest stderr",
        f"listener {mqtt_port} {tcp_bind}".rstrip(),
        *tls_lines,
        f"listener {ws_port} {ws_bind}".rstrip(),
        "protocol websockets",
        *tls_lines,
        "",
    ]
    layout.config_file.write_text("\n".join(lines), encoding="utf-8")
    return layout.config_file


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _port_open(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


class MosquittoProcess:
    """A Mosquitto child process; ``start`` waits until both listeners accept."""

    def __init__(
        self,
        config_file: Path,
        *,
        mqtt_port: int,
        ws_port: int,
        log_file: Path | None = None,
        executable: str | None = None,
    ) -> None:
        self.config_file = config_file
        self.mqtt_port = mqtt_port
        self.ws_port = ws_port
        self.log_file = log_file
        self.executable = executable or shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> None:
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError("mosquitto is already running")
        for port in (self.mqtt_port, self.ws_port):
            # Otherwise another broker on the port would pass for ours.
            if _port_open("127.0.0.1", port):
                raise RuntimeError(f"port {port} is already in use")
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
        try:
            self.process = subprocess.Popen(
                [self.executable, "-c", str(self.config_file)],
                stdout=out,
                stderr=subprocess.STDOUT,
                # Its own process group: a terminal's Ctrl-C reaches only `hub up`,
                # which stops the api first and then the broker (SIGTERM).
                process_group=0,
            )
        finally:
            if self.log_file:
                out.close()  # type: ignore[union-attr]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"mosquitto exited with {self.process.returncode}; see {self.log_file}"
                )
            if _port_open("127.0.0.1", self.mqtt_port) and _port_open("127.0.0.1", self.ws_port):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("mosquitto did not open its listeners in time")

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (the broker saves its state), then wait; SIGKILL if it hangs."""
        proc = self.process
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.process = None

    def kill(self) -> None:
        """SIGKILL: a crash, for tests of what survives one."""
        proc = self.process
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        self.process = None
