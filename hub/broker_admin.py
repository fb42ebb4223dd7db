"""Broker administration: Mosquitto's Dynamic Security plugin driven over
``$CONTROL/dynamic-security/v1``.

``BrokerAdmin`` is the narrow interface the rest of the hub uses; ``DynsecAdmin`` is
the Mosquitto implementation. It keeps one admin connection alive in a background
task (reconnecting with backoff) and matches each reply to its request by
``correlationData``: replies go to every subscriber of the response topic, so ids are
unique per request and foreign replies are ignored.

Mosquitto 2.0.11 quirks handled here (see MOSQUITTO-NOTES): roles are never given
inline to ``createClient`` (a later ``deleteRole`` would crash the broker); every
issued client is bound to its client id, so no login can take over another session.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import ssl
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import aiomqtt

from hub.errors import BrokerUnavailableError, DynsecError
from hub.mqtt import login_accepted, publish_properties
from hub.service import BackgroundService, wait_event

log = logging.getLogger("hub.broker_admin")

CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC = "$CONTROL/dynamic-security/v1/response"
# The token plugin's control channel (broker-config/plugin): revocations.
TOKEN_CONTROL_TOPIC = "$CONTROL/hub-auth/v1"
TOKEN_RESPONSE_TOPIC = "$CONTROL/hub-auth/v1/response"
# The plugin refuses control payloads over 64 KiB; stay well below, correlation
# data included.
CONTROL_PAYLOAD_BUDGET = 48 * 1024


def _by_size(commands: Sequence[dict[str, Any]], budget: int) -> list[list[dict[str, Any]]]:
    """Split ``commands`` into requests whose JSON stays under ``budget`` bytes."""
    chunks: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    size = 0
    for cmd in commands:
        # Its JSON plus the correlation data ``execute`` adds (a 32-hex id and index).
        cost = len(json.dumps(cmd)) + 64
        if current and size + cost > budget:
            chunks.append(current)
            current, size = [], 0
        current.append(cmd)
        size += cost
    if current:
        chunks.append(current)
    return chunks


AclType = Literal[
    "publishClientSend",
    "publishClientReceive",
    "subscribeLiteral",
    "subscribePattern",
    "unsubscribeLiteral",
    "unsubscribePattern",
]


@dataclass(frozen=True, slots=True)
class Acl:
    acltype: AclType
    topic: str
    allow: bool = True
    priority: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "acltype": self.acltype,
            "topic": self.topic,
            "allow": self.allow,
            "priority": self.priority,
        }


@dataclass(frozen=True, slots=True)
class Revocation:
    """Refuse every broker token of ``client_id`` until ``until`` (unix seconds, the
    latest expiry of what was issued to it); the broker closes its connection."""

    client_id: str
    until: int

    def as_command(self) -> dict[str, Any]:
        return {"command": "revoke", "clientid": self.client_id, "until": self.until}


@dataclass(frozen=True, slots=True)
class Role:
    name: str
    acls: tuple[Acl, ...] = field(default_factory=tuple)


class BrokerAdmin(Protocol):
    """What the hub needs from a broker's access control."""

    async def ensure_role(self, role: Role, *, refresh: bool = False) -> None: ...

    async def delete_role(self, name: str) -> None: ...

    async def create_client(
        self, *, username: str, password: str, client_id: str, roles: Sequence[str]
    ) -> None: ...

    async def delete_client(self, username: str) -> None: ...

    async def add_client_role(self, username: str, role: str) -> None: ...

    async def set_client_password(self, username: str, password: str) -> None: ...

    async def list_clients(self) -> list[str]: ...

    async def revoke_tokens(self, revocations: Sequence[Revocation]) -> None: ...


class DynsecAdmin(BackgroundService):
    """Mosquitto Dynamic Security administration over one supervised connection."""

    _task_name = "hub-dynsec-admin"

    def __init__(
        self,
        *,
        host: str,
        port: int,
        username: str,
        password: str,
        timeout: float = 5.0,
        tls_context: ssl.SSLContext | None = None,
        sys_topics: Sequence[str] = (),
        on_sys: Callable[[str, bytes], None] | None = None,
    ) -> None:
        """``sys_topics``: ``$SYS`` topics to follow on the admin connection (its role
        may read ``$SYS/#``); each message goes to ``on_sys`` as topic and payload."""
        super().__init__()
        self._sys_topics = tuple(sys_topics) if on_sys is not None else ()
        self._on_sys = on_sys
        self._host = host
        self._port = port
        self._username = username
        self._password = password
        self._timeout = timeout
        self._tls_context = tls_context
        self._pending: dict[str, asyncio.Future[list[dict[str, Any]]]] = {}
        self._client: aiomqtt.Client | None = None
        self._connected = asyncio.Event()
        self._known_roles: set[str] = set()
        self._generation = 0

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def generation(self) -> int:
        """Counts admin connections: a change means the broker may have restarted, so
        state kept only by this side (revocations) is sent again."""
        return self._generation

    def _stopped(self) -> None:
        self._fail_pending(BrokerUnavailableError("broker admin stopped"))

    async def wait_connected(self, timeout: float) -> None:
        if not await wait_event(self._connected, timeout):
            raise BrokerUnavailableError("broker admin is not connected")

    async def _run(self) -> None:
        delay = 0.2
        while True:
            client = aiomqtt.Client(
                self._host,
                self._port,
                username=self._username,
                password=self._password,
                identifier=f"hub-admin-{uuid.uuid4().hex[:12]}",
                protocol=aiomqtt.ProtocolVersion.V5,
                clean_start=True,
                keepalive=15,
                timeout=self._timeout,
                tls_context=self._tls_context,
            )
            try:
                async with client:
                    await client.subscribe(RESPONSE_TOPIC, qos=1)
                    await client.subscribe(TOKEN_RESPONSE_TOPIC, qos=1)
                    for sys_topic in self._sys_topics:
                        await client.subscribe(sys_topic, qos=0)
                    self._client = client
                    self._generation += 1
                    self._connected.set()
                    delay = 0.2
                    log.info("broker admin connected to %s:%s", self._host, self._port)
                    async for message in client.messages:
                        topic = message.topic.value
                        if topic.startswith("$SYS/"):
                            self._sys_message(topic, message.payload)
                        else:
                            self._on_response(message.payload)
            except aiomqtt.MqttError as exc:
                log.warning("broker admin connection lost: %s", exc)
            finally:
                self._client = None
                self._connected.clear()
                self._fail_pending(BrokerUnavailableError("broker admin connection lost"))
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 5.0)

    def _sys_message(self, topic: str, payload: Any) -> None:
        if self._on_sys is not None and isinstance(payload, bytes | bytearray):
            try:
                self._on_sys(topic, bytes(payload))
            except Exception:
                log.exception("handling %s failed", topic)

    def _fail_pending(self, exc: Exception) -> None:
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(exc)
        self._pending.clear()

    def _on_response(self, payload: Any) -> None:
        try:
            body = json.loads(payload)
            responses = body["responses"]
        except (ValueError, TypeError, KeyError):
            log.warning("ignoring malformed broker control response")
            return
        groups: dict[str, list[dict[str, Any]]] = {}
        for item in responses:
            corr = str(item.get("correlationData", ""))
            request_id = corr.rsplit(":", 1)[0]
            groups.setdefault(request_id, []).append(item)
        for request_id, items in groups.items():
            fut = self._pending.pop(request_id, None)
            if fut is not None and not fut.done():
                fut.set_result(items)

    async def execute(
        self,
        commands: Sequence[dict[str, Any]],
        *,
        tolerate: Sequence[str] = (),
        topic: str = CONTROL_TOPIC,
    ) -> list[dict[str, Any]]:
        """Send ``commands`` as one request to ``topic`` (Dynamic Security by default,
        or the token plugin's) and return their replies in order.

        Raises DynsecError for the first reply with an error not listed in
        ``tolerate``, BrokerUnavailableError when the broker does not answer.
        """
        await self.wait_connected(self._timeout)
        client = self._client
        if client is None:
            raise BrokerUnavailableError("broker admin is not connected")
        request_id = uuid.uuid4().hex
        body = {
            "commands": [
                {**cmd, "correlationData": f"{request_id}:{i}"} for i, cmd in enumerate(commands)
            ]
        }
        fut: asyncio.Future[list[dict[str, Any]]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = fut
        props = publish_properties(json_body=True)
        try:
            await client.publish(topic, json.dumps(body), qos=1, properties=props)
            replies = await asyncio.wait_for(fut, self._timeout)
        except (aiomqtt.MqttError, TimeoutError) as exc:
            raise BrokerUnavailableError(f"broker control request failed: {exc}") from exc
        finally:
            self._pending.pop(request_id, None)
        by_index = {int(str(r.get("correlationData")).rsplit(":", 1)[1]): r for r in replies}
        ordered = [by_index.get(i, {}) for i in range(len(commands))]
        for cmd, reply in zip(commands, ordered, strict=True):
            error = reply.get("error")
            if error and error not in tolerate:
                raise DynsecError(str(cmd["command"]), str(error))
        return ordered

    # --- the BrokerAdmin interface ---

    async def set_default_acl_access(self, access: dict[str, bool]) -> None:
        await self.execute(
            [
                {
                    "command": "setDefaultACLAccess",
                    "acls": [{"acltype": k, "allow": v} for k, v in access.items()],
                }
            ]
        )

    async def ensure_role(self, role: Role, *, refresh: bool = False) -> None:
        """Create ``role`` with its ACLs, or bring an existing role's ACLs in line.
        Known roles are remembered; ``refresh`` asks the broker again."""
        if role.name in self._known_roles and not refresh:
            return
        (reply,) = await self.execute(
            [
                {
                    "command": "createRole",
                    "rolename": role.name,
                    "acls": [a.as_json() for a in role.acls],
                }
            ],
            tolerate=("Role already exists",),
        )
        if reply.get("error"):
            await self._reconcile_role(role)
        self._known_roles.add(role.name)

    async def _reconcile_role(self, role: Role) -> None:
        (reply,) = await self.execute([{"command": "getRole", "rolename": role.name}])
        have = {
            (a["acltype"], a["topic"]): a
            for a in reply.get("data", {}).get("role", {}).get("acls", [])
        }
        want = {(a.acltype, a.topic): a for a in role.acls}
        commands: list[dict[str, Any]] = []
        for key, current in have.items():
            target = want.get(key)
            if (
                target is None
                or bool(current.get("allow")) != target.allow
                or int(current.get("priority", 0)) != target.priority
            ):
                commands.append(
                    {
                        "command": "removeRoleACL",
                        "rolename": role.name,
                        "acltype": key[0],
                        "topic": key[1],
                    }
                )
        for key, target in want.items():
            current = have.get(key)
            if current is None or any(
                c["topic"] == key[1] and c["acltype"] == key[0] for c in commands
            ):
                commands.append(
                    {"command": "addRoleACL", "rolename": role.name, **target.as_json()}
                )
        if commands:
            log.info("reconciling broker role %s (%d changes)", role.name, len(commands))
            await self.execute(commands)

    async def delete_role(self, name: str) -> None:
        self._known_roles.discard(name)
        await self.execute(
            [{"command": "deleteRole", "rolename": name}], tolerate=("Role not found",)
        )

    async def create_client(
        self, *, username: str, password: str, client_id: str, roles: Sequence[str]
    ) -> None:
        commands: list[dict[str, Any]] = [
            {
                "command": "createClient",
                "username": username,
                "password": password,
                "clientid": client_id,
            }
        ]
        commands += [
            {"command": "addClientRole", "username": username, "rolename": r, "priority": 0}
            for r in roles
        ]
        try:
            await self.execute(commands)
        except DynsecError as exc:
            if exc.command != "createClient":
                # Half-made: remove it rather than leave a client with partial rights.
                await self.delete_client(username)
            raise

    async def ensure_service_client(
        self, *, username: str, password: str, roles: Sequence[str]
    ) -> None:
        """Create a hub account, or reset its password if the broker refuses it, and
        add the roles it lacks. An account that already logs in with ``password`` is
        left as it is: setting a password disconnects the account's clients, the
        relays of every other api process among them."""
        if not await self._login_accepted(username, password):
            (reply,) = await self.execute(
                [{"command": "createClient", "username": username, "password": password}],
                tolerate=("Client already exists",),
            )
            # Another api process may have just created it with this very password.
            if reply.get("error") and not await self._login_accepted(username, password):
                await self.set_client_password(username, password)
        (info,) = await self.execute([{"command": "getClient", "username": username}])
        held = {r.get("rolename") for r in info.get("data", {}).get("client", {}).get("roles", [])}
        # addClientRole for a role already held answers "Internal error" in 2.0.11.
        missing = [r for r in roles if r not in held]
        if missing:
            await self.execute(
                [{"command": "addClientRole", "username": username, "rolename": r} for r in missing]
            )

    async def _login_accepted(self, username: str, password: str) -> bool:
        return await login_accepted(
            host=self._host,
            port=self._port,
            username=username,
            password=password,
            timeout=self._timeout,
            tls_context=self._tls_context,
        )

    async def delete_client(self, username: str) -> None:
        await self.execute(
            [{"command": "deleteClient", "username": username}], tolerate=("Client not found",)
        )

    async def add_client_role(self, username: str, role: str) -> None:
        """Give an existing client one more role (the broker disconnects it)."""
        await self.execute(
            [{"command": "addClientRole", "username": username, "rolename": role, "priority": 0}]
        )

    async def set_client_password(self, username: str, password: str) -> None:
        await self.execute(
            [{"command": "setClientPassword", "username": username, "password": password}]
        )

    async def list_clients(self) -> list[str]:
        (reply,) = await self.execute([{"command": "listClients", "verbose": False}])
        return [str(c) for c in reply.get("data", {}).get("clients", [])]

    async def list_roles(self) -> list[str]:
        (reply,) = await self.execute([{"command": "listRoles", "verbose": False}])
        return [str(r) for r in reply.get("data", {}).get("roles", [])]

    # --- the token plugin ---

    async def revoke_tokens(self, revocations: Sequence[Revocation]) -> None:
        """Have the broker refuse these clients' tokens and close their connections;
        the plugin keeps the list across restarts until each entry's ``until``."""
        for chunk in _by_size([r.as_command() for r in revocations], CONTROL_PAYLOAD_BUDGET):
            await self.execute(chunk, topic=TOKEN_CONTROL_TOPIC)

    async def list_revocations(self) -> list[dict[str, Any]]:
        (reply,) = await self.execute([{"command": "listRevocations"}], topic=TOKEN_CONTROL_TOPIC)
        return list(reply.get("revocations", []))
