"""Offline token sessions survive a broker restart (SIGTERM, or kill -9 after the
autosave): hub-auth keeps their tokens in its sessions file, verifies them again at
start, and keeps ACL-checking what is queued for them."""

from __future__ import annotations

import stat
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.broker.hubauth import (
    CONTROL_RESPONSE,
    ORDERS,
    HubBroker,
    Token,
    control,
    rule,
    wait_until,
)

EXPIRY = 3600


@pytest.fixture(params=ORDERS)
def broker(
    plugin_built: None, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[HubBroker]:
    b = HubBroker(tmp_path / "broker", order=request.param)
    b.start()
    yield b
    b.stop()


def restart(broker: HubBroker, how: str, token: Token) -> None:
    if how == "sigterm":
        broker.restart()
        return
    # kill -9 keeps only what was saved: wait for Mosquitto's next autosave (every ~2 s,
    # whole seconds, so up to 3 s and later on a loaded machine) and for hub-auth's
    # sessions file to hold the token, rather than sleeping a fixed time.
    since = time.time()
    db = broker.data_dir / "mosquitto.db"
    assert wait_until(lambda: db.exists() and db.stat().st_mtime > since + 0.05, timeout=30), (
        "Mosquitto never autosaved"
    )
    assert wait_until(
        lambda: (
            broker.sessions_file.exists()
            and token.value.encode() in broker.sessions_file.read_bytes()
        ),
        timeout=30,
    ), "hub-auth never saved the offline session"
    broker.kill()
    broker.start()


def offline_session(broker: HubBroker, tenant: str) -> Token:
    """A token client with a persistent session on tenants/<tenant>/patients/#, which may
    not receive anything about p-secret; then it goes away."""
    acl = [
        rule("deny", "subscribe", f"tenants/{tenant}/patients/p-secret/#"),
        rule("allow", "subscribe", f"tenants/{tenant}/patients/#"),
    ]
    token = broker.token(tenant=tenant, acl=acl)
    probe = broker.probe(token, clean_start=False, session_expiry=EXPIRY)
    assert not probe.connect().is_failure
    assert not probe.subscribe(f"tenants/{tenant}/patients/#").is_failure
    probe.close()
    return token


def publish(broker: HubBroker, *messages: tuple[str, bytes]) -> None:
    publisher = broker.publisher()
    assert not publisher.connect().is_failure
    for topic, payload in messages:
        assert not publisher.publish(topic, payload).is_failure
    publisher.close()


def back_online(broker: HubBroker, token: Token, tenant: str) -> list[bytes]:
    """Reconnects the session and returns what it receives up to a marker published
    live (so everything queued before it has arrived)."""
    back = broker.probe(token, clean_start=False, session_expiry=EXPIRY)
    assert not back.connect().is_failure
    try:
        assert back.session_present
        publish(broker, (f"tenants/{tenant}/patients/p-1/marker", b"marker"))
        got: list[bytes] = []
        while not got or got[-1] != b"marker":
            got.append(back.wait_for(lambda m: True).payload)
        return got
    finally:
        back.close()


@pytest.mark.parametrize("how", ["sigterm", "kill"])
def test_a_restored_offline_session_gets_what_its_acl_allows(broker: HubBroker, how: str) -> None:
    tenant = f"t{uuid.uuid4().hex[:6]}"
    token = offline_session(broker, tenant)
    restart(broker, how, token)
    publish(
        broker,
        (f"tenants/{tenant}/patients/p-secret/claim/c-1/created", b"secret"),
        (f"tenants/{tenant}/patients/p-1/claim/c-2/created", b"queued"),
    )
    assert back_online(broker, token, tenant) == [b"queued", b"marker"]
    assert stat.S_IMODE(broker.sessions_file.stat().st_mode) == 0o600  # bearer tokens


def test_a_revoked_restored_session_gets_nothing_more(broker: HubBroker) -> None:
    tenant = f"t{uuid.uuid4().hex[:6]}"
    token = offline_session(broker, tenant)
    broker.restart()
    admin = broker.admin()
    assert not admin.connect().is_failure
    assert not admin.subscribe(CONTROL_RESPONSE).is_failure
    (answer,) = control(
        admin, {"command": "revoke", "jti": token.claims["jti"], "until": token.claims["exp"]}
    )
    admin.close()
    assert "error" not in answer
    time.sleep(0.5)  # the entry goes on the next TICK
    publish(broker, (f"tenants/{tenant}/patients/p-1/claim/c-2/created", b"queued"))
    renewed = broker.token(
        clientid=token.clientid, username=token.username, tenant=tenant, acl=token.claims["acl"]
    )
    assert back_online(broker, renewed, tenant) == [b"marker"]


def test_a_tampered_sessions_file_loses_only_that_entry(broker: HubBroker) -> None:
    tenant = f"t{uuid.uuid4().hex[:6]}"
    tampered, intact = offline_session(broker, tenant), offline_session(broker, tenant)
    broker.stop()
    lines = broker.sessions_file.read_bytes().splitlines(keepends=True)
    assert len(lines) == 2
    i = next(i for i, line in enumerate(lines) if tampered.value.encode() in line)
    line = bytearray(lines[i])
    pos = line.index(tampered.value.encode()) + len(tampered.value) // 2
    line[pos] = ord("A") if line[pos] != ord("A") else ord("B")
    lines[i] = bytes(line)
    broker.sessions_file.write_bytes(b"".join(lines))
    broker.start()
    assert "not restored" in broker.log()
    publish(broker, (f"tenants/{tenant}/patients/p-1/claim/c-2/created", b"queued"))
    assert back_online(broker, tampered, tenant) == [b"marker"]
    assert back_online(broker, intact, tenant) == [b"queued", b"marker"]


def test_sessions_wait_for_a_keys_file_that_appears_after_the_start(broker: HubBroker) -> None:
    tenant = f"t{uuid.uuid4().hex[:6]}"
    token = offline_session(broker, tenant)
    broker.stop()
    broker.keys_file.unlink()
    broker.start()
    broker.write_jwks(broker.keys)
    assert wait_until(lambda: "once keys were loaded" in broker.log(), timeout=5)
    publish(broker, (f"tenants/{tenant}/patients/p-1/claim/c-2/created", b"queued"))
    assert back_online(broker, token, tenant) == [b"queued", b"marker"]
