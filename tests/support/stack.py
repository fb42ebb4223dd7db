"""The real system for tests: Mosquitto from broker-config/ on free ports, a real
database (SQLite file or a fresh PostgreSQL database), and the api as a uvicorn
subprocess started exactly as `hub up` configures it."""

from __future__ import annotations

import os
import random
import secrets
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from api.migrate import upgrade
from hub.mosquitto import BrokerLayout, MosquittoProcess, prepare_broker_state, render_config
from hub.tokens import mint_dev_token
from tests.support.mqtt import Probe, dynsec

ROOT = Path(__file__).resolve().parents[2]


# Ports handed out by this process: never twice, even after their owner stopped (a
# restarted broker binds its ports again).
_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A free loopback port below the kernel's ephemeral range (32768-60999 on Linux).
    A port from that range (what binding port 0 gives) can be taken, between now and
    the server's bind, by the source port of any outgoing connection; the reconnect
    storm alone opens thousands."""
    for _ in range(2000):
        port = random.randint(20000, 32000)
        if port in _HANDED_OUT:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    raise RuntimeError("no free loopback port between 20000 and 32000")


class Broker:
    def __init__(self, data_dir: Path, *, extra_config: tuple[str, ...] = ()) -> None:
        """``extra_config``: lines appended to the generated configuration, which
        override broker-config/ (the later setting wins)."""
        self.data_dir = data_dir
        self.layout = BrokerLayout(data_dir)
        self.secrets = prepare_broker_state(self.layout)
        self.mqtt_port = free_port()
        self.ws_port = free_port()
        config = render_config(self.layout, mqtt_port=self.mqtt_port, ws_port=self.ws_port)
        if extra_config:
            with config.open("a", encoding="utf-8") as fh:
                fh.write("\n".join(extra_config) + "\n")
        self.process = MosquittoProcess(
            config,
            mqtt_port=self.mqtt_port,
            ws_port=self.ws_port,
            log_file=data_dir / "broker.log",
        )

    def start(self) -> None:
        self.process.start()

    def stop(self) -> None:
        self.process.stop()

    def kill(self) -> None:
        self.process.kill()

    @property
    def running(self) -> bool:
        return self.process.running

    def admin_probe(self) -> Probe:
        return Probe(
            client_id=f"test-admin-{uuid.uuid4().hex[:8]}",
            username="hub-admin",
            password=self.secrets.admin_password,
            port=self.mqtt_port,
        )


class Database:
    """A fresh database: an SQLite file, or a new PostgreSQL database (dropped after)
    on the server of ``admin_url`` (by default ``HUB_TEST_POSTGRES_URL``)."""

    def __init__(self, backend: str, tmp: Path, *, admin_url: str | None = None) -> None:
        self.backend = backend
        self._admin_url: str | None = None
        if backend == "sqlite":
            self.url = f"sqlite:///{tmp / 'hub.db'}"
        else:
            admin = admin_url or os.environ["HUB_TEST_POSTGRES_URL"]
            self._admin_url = admin
            self.name = f"hubtest_{uuid.uuid4().hex[:10]}"
            engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
            with engine.connect() as conn:
                conn.exec_driver_sql(f'CREATE DATABASE "{self.name}"')
            engine.dispose()
            self.url = (
                sa.engine.make_url(admin)
                .set(database=self.name)
                .render_as_string(hide_password=False)
            )
        upgrade(self.url)

    def drop(self) -> None:
        if not self._admin_url:
            return
        engine = sa.create_engine(self._admin_url, isolation_level="AUTOCOMMIT")
        try:
            # FORCE ends the test's own leftover connections. It fails while a backend of
            # another role (an autovacuum worker of the new database) is attached, which
            # goes away by itself: try again a few times.
            for attempt in range(10):
                try:
                    with engine.connect() as conn:
                        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
                    return
                except (sa.exc.OperationalError, sa.exc.ProgrammingError):
                    if attempt == 9:
                        raise
                    time.sleep(0.5)
        finally:
            engine.dispose()


class Api:
    def __init__(self, *, env: dict[str, str], log_file: Path) -> None:
        self.port = free_port()
        self.env = {**os.environ, **env, "HUB_HTTP_PORT": str(self.port)}
        self.log_file = log_file
        self.proc: subprocess.Popen[bytes] | None = None
        self.base_url = f"http://127.0.0.1:{self.port}"

    def start(self, *, wait_ready: bool = True) -> None:
        with open(self.log_file, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "api.app:create_app",
                    "--factory",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--log-level",
                    "warning",
                ],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )
        deadline = time.monotonic() + 60
        path = "/readyz" if wait_ready else "/healthz"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.proc = None
                raise RuntimeError(
                    f"api exited; see {self.log_file}:\n{self.log_file.read_text()[-3000:]}"
                )
            try:
                if httpx.get(self.base_url + path, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"api not ready; see {self.log_file}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


def api_env(broker: Broker, db: Database, jwt_secret: str) -> dict[str, str]:
    """The settings of an api process on ``broker`` (and its data directory) and ``db``."""
    return {
        "HUB_ENV": "development",
        "HUB_DATA_DIR": str(broker.data_dir),
        "HUB_DATABASE_URL": db.url,
        "HUB_MQTT_PORT": str(broker.mqtt_port),
        "HUB_WS_PORT": str(broker.ws_port),
        "HUB_JWT_SECRET": jwt_secret,
    }


@dataclass
class Stack:
    backend: str
    broker: Broker
    db: Database
    api: Api
    jwt_secret: str
    tmp: Path
    # One connection pool for every client of this stack. A client (and its sockets) per
    # call would pile up: past 1,024 open descriptors, paho's select() loop no longer
    # sees its own socket, and MQTT probes time out waiting for a CONNACK.
    _transport: httpx.HTTPTransport = field(default_factory=httpx.HTTPTransport)
    more_apis: list[Api] = field(default_factory=list)

    @classmethod
    def create(
        cls, backend: str, tmp: Path, *, broker_config: tuple[str, ...] = (), **extra_env: str
    ) -> Stack:
        tmp.mkdir(parents=True, exist_ok=True)
        broker = Broker(tmp / "data", extra_config=broker_config)
        broker.start()
        try:
            db = Database(backend, tmp)
        except BaseException:
            broker.stop()
            raise
        jwt_secret = secrets.token_urlsafe(32)
        env = {
            **api_env(broker, db, jwt_secret),
            "HUB_RELAY_POLL_INTERVAL_SECONDS": "0.2",
            **extra_env,
        }
        api = Api(env=env, log_file=tmp / "api.log")
        try:
            api.start()
        except BaseException:
            broker.stop()
            db.drop()
            raise
        return cls(backend, broker, db, api, jwt_secret, tmp)

    def add_api(self, **extra_env: str) -> Api:
        """Start another api process on the same database and broker (and data
        directory), configured like the first; it is stopped with the stack."""
        n = len(self.more_apis) + 2
        api = Api(env={**self.api.env, **extra_env}, log_file=self.tmp / f"api-{n}.log")
        self.more_apis.append(api)
        api.start()
        return api

    def close(self) -> None:
        self._transport.close()
        for api in self.more_apis:
            api.stop()
        self.api.stop()
        self.broker.stop()
        self.db.drop()

    def wait_published(self, timeout: float = 20) -> None:
        """Until the relay published (and marked) every committed row (/readyz)."""
        deadline = time.monotonic() + timeout
        while True:
            body = httpx.get(self.api.base_url + "/readyz", timeout=5).json()
            left = body["checks"]["relayLag"]["unpublished"]
            if left == 0:
                return
            assert time.monotonic() < deadline, f"{left} rows still unpublished"
            time.sleep(0.05)

    def token(self, tenant: str, user: str, *roles: str, ttl: float = 3600) -> str:
        return mint_dev_token(
            secret=self.jwt_secret,
            tenant=tenant,
            user=user,
            roles=list(roles),
            ttl=timedelta(seconds=ttl),
        )

    def http(self, token: str | None = None, *, api: Api | None = None) -> httpx.Client:
        """A client of ``api`` (by default the first api process)."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        base_url = (api or self.api).base_url
        return httpx.Client(
            base_url=base_url, headers=headers, timeout=30, transport=self._transport
        )

    def credentials(self, token: str, **body: Any) -> dict[str, Any]:
        r = self.http(token).post("/realtime/credentials", json=body or None)
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    def probe(
        self,
        creds: dict[str, Any],
        *,
        transport: str = "websockets",
        client_id: str | None = None,
        clean_start: bool = True,
        session_expiry: int | None = None,
    ) -> Probe:
        port = self.broker.ws_port if transport == "websockets" else self.broker.mqtt_port
        return Probe(
            client_id=client_id or creds["clientId"],
            username=creds["username"],
            password=creds["password"],
            port=port,
            transport=transport,
            clean_start=clean_start,
            session_expiry=session_expiry,
        )

    def reconnect(self, creds: dict[str, Any]) -> Probe:
        """Connect on the persistent session of these credentials (TCP, clean start
        false, one hour of session expiry), as a client coming back does."""
        probe = self.probe(creds, transport="tcp", clean_start=False, session_expiry=3600)
        rc = probe.connect()
        assert not rc.is_failure, rc
        return probe

    def connected_probe(self, token: str, **kwargs: Any) -> Probe:
        probe = self.probe(self.credentials(token), **kwargs)
        rc = probe.connect()
        assert not rc.is_failure, rc
        return probe

    def reader(self) -> Probe:
        """A connected broker client that may read every tenant's topics, made through
        dynsec as an operator would (not by the api), on a persistent session."""
        name = f"test-reader-{uuid.uuid4().hex[:8]}"
        password = secrets.token_urlsafe(16)
        acls = [
            {"acltype": t, "topic": "tenants/#", "allow": True, "priority": 0}
            for t in ("subscribePattern", "publishClientReceive")
        ]
        admin = self.broker.admin_probe()
        assert not admin.connect().is_failure
        try:
            assert not admin.subscribe("$CONTROL/dynamic-security/v1/response").is_failure
            replies = dynsec(
                admin,
                {"command": "createRole", "rolename": name, "acls": acls},
                {"command": "createClient", "username": name, "password": password},
                {"command": "addClientRole", "username": name, "rolename": name},
            )
            assert all("error" not in r for r in replies), replies
        finally:
            admin.close()
        probe = Probe(
            client_id=name,
            username=name,
            password=password,
            port=self.broker.mqtt_port,
            clean_start=False,
            session_expiry=3600,
        )
        rc = probe.connect()
        assert not rc.is_failure, rc
        return probe
