"""hub-auth beside Dynamic Security, in both plugin load orders: who may connect, what
a token's acl lets a client subscribe to, publish, and receive."""

from __future__ import annotations

import json
import socket
import struct
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import jwt
import pytest

from tests.broker.hubauth import (
    PUBLISHER,
    HubBroker,
    SigningKey,
    Token,
    b64url,
    hs256_with_public_key,
    rule,
)
from tests.support.mqtt import Probe

NOT_AUTHORIZED = 0x87
GRANTED_QOS1 = 1


def unique_tenant() -> str:
    return f"t{uuid.uuid4().hex[:8]}"


@pytest.fixture
def publisher(broker: HubBroker) -> Iterator[Probe]:
    p = broker.publisher()
    assert not p.connect().is_failure
    yield p
    p.close()


@pytest.fixture
def connected(broker: HubBroker) -> Iterator[Callable[..., Probe]]:
    """Connects token clients and closes them after the test."""
    probes: list[Probe] = []

    def connect(token: Token, **kw: Any) -> Probe:
        probe = broker.probe(token, **kw)
        rc = probe.connect()
        assert not rc.is_failure, rc
        probes.append(probe)
        return probe

    yield connect
    for p in probes:
        p.close()


def event_topic(tenant: str, patient: str, entity: str = "appointment") -> str:
    return f"tenants/{tenant}/patients/{patient}/{entity}/{uuid.uuid4().hex[:6]}/created"


def test_valid_token_subscribes_and_receives(
    broker: HubBroker, publisher: Probe, connected: Callable[..., Probe]
) -> None:
    tenant = unique_tenant()
    client = connected(broker.token(tenant=tenant))
    assert client.subscribe(f"tenants/{tenant}/patients/+/appointment/#").value == GRANTED_QOS1
    topic = event_topic(tenant, "p-1")
    assert not publisher.publish(topic, b'{"x":1}').is_failure
    assert client.wait_for(lambda m: m.topic == topic).payload == b'{"x":1}'


def test_token_client_over_websockets(
    broker: HubBroker, publisher: Probe, connected: Callable[..., Probe]
) -> None:
    tenant = unique_tenant()
    client = connected(broker.token(tenant=tenant), transport="websockets")
    assert client.subscribe(f"tenants/{tenant}/patients/#").value == GRANTED_QOS1
    topic = event_topic(tenant, "p-2")
    publisher.publish(topic, b"{}")
    client.wait_for(lambda m: m.topic == topic)


def test_dynsec_accounts_still_connect(broker: HubBroker) -> None:
    for probe in (broker.admin(), broker.publisher()):
        assert not probe.connect().is_failure
        probe.close()
    wrong = broker.admin()
    wrong.client.username_pw_set("hub-admin", "not-the-password")
    assert wrong.connect().value == NOT_AUTHORIZED


@pytest.mark.parametrize(
    "topic",
    [
        "tenants/other/patients/#",
        "#",
        "+/#",
        "tenants/+/patients/#",
        "tenants/{t}/#",
        "$SYS/#",
        "$CONTROL/#",
        "$CONTROL/hub-auth/v1/response",
        "tenants/{t}/users/u-2/#",
        "$share/g/tenants/{t}/users/u-2/#",
    ],
)
def test_subscriptions_outside_the_acl_are_refused(
    broker: HubBroker, connected: Callable[..., Probe], topic: str
) -> None:
    tenant = unique_tenant()
    client = connected(broker.token(tenant=tenant, username="u-1"))
    assert client.subscribe(topic.format(t=tenant)).value == NOT_AUTHORIZED
    # The acl's own subtree, also as a shared subscription, stays allowed.
    assert client.subscribe(f"tenants/{tenant}/users/u-1/#").value == GRANTED_QOS1
    assert client.subscribe(f"$share/g/tenants/{tenant}/patients/#").value == GRANTED_QOS1


def test_publishing_is_refused_without_a_publish_rule(
    broker: HubBroker, connected: Callable[..., Probe]
) -> None:
    tenant = unique_tenant()
    client = connected(broker.token(tenant=tenant))
    assert client.publish(event_topic(tenant, "p-1"), b"{}").value == NOT_AUTHORIZED
    assert client.publish("$CONTROL/hub-auth/v1", b'{"commands":[]}').value == NOT_AUTHORIZED


def test_nothing_outside_the_acl_is_delivered(
    broker: HubBroker, publisher: Probe, connected: Callable[..., Probe]
) -> None:
    """A claim-only grant never sees appointments, even though both match the
    subscription the broker's wildcards would allow."""
    tenant = unique_tenant()
    acl = [
        rule("allow", "subscribe", f"tenants/{tenant}/patients/+/claim/#"),
        rule("deny", "all", "#"),
    ]
    client = connected(broker.token(tenant=tenant, acl=acl))
    assert client.subscribe(f"tenants/{tenant}/patients/#").value == NOT_AUTHORIZED
    assert client.subscribe(f"tenants/{tenant}/patients/+/claim/#").value == GRANTED_QOS1
    hidden = event_topic(tenant, "p-1", "appointment")
    shown = event_topic(tenant, "p-1", "claim")
    publisher.publish(hidden, b"{}")
    publisher.publish(f"tenants/{unique_tenant()}/patients/p-1/claim/c/created", b"{}")
    publisher.publish(shown, b"{}")
    client.wait_for(lambda m: m.topic == shown)
    assert [m.topic for m in client.drain()] == []


def test_a_deny_inside_an_allowed_subscription_holds_for_every_delivery(
    broker: HubBroker, publisher: Probe, connected: Callable[..., Probe]
) -> None:
    """The subscription is allowed (the deny does not cover it), but each delivery is
    checked again: the denied patient's events and retained snapshots never arrive."""
    tenant = unique_tenant()
    acl = [
        rule("deny", "subscribe", f"tenants/{tenant}/patients/p-secret/#"),
        rule("allow", "subscribe", f"tenants/{tenant}/patients/#"),
        rule("deny", "all", "#"),
    ]
    publisher.publish(f"tenants/{tenant}/patients/p-secret/appointment/a-1", b"{}", retain=True)
    publisher.publish(f"tenants/{tenant}/patients/p-1/appointment/a-2", b"{}", retain=True)
    client = connected(broker.token(tenant=tenant, acl=acl))
    assert client.subscribe(f"tenants/{tenant}/patients/p-secret/#").value == NOT_AUTHORIZED
    assert client.subscribe(f"tenants/{tenant}/patients/#").value == GRANTED_QOS1
    client.wait_for(lambda m: m.topic.endswith("p-1/appointment/a-2"))
    secret, shown = event_topic(tenant, "p-secret"), event_topic(tenant, "p-1")
    publisher.publish(secret, b"{}")
    publisher.publish(shown, b"{}")
    client.wait_for(lambda m: m.topic == shown)
    assert [m.topic for m in client.drain() if "p-secret" in m.topic] == []


# ---- refused at CONNECT ----


def _with_header(claims: dict[str, Any], header: dict[str, Any], sig: str) -> str:
    head = b64url(json.dumps(header).encode())
    body = b64url(json.dumps(claims).encode())
    return f"{head}.{body}.{sig}"


def _refusals() -> dict[str, Callable[[HubBroker], tuple[Token, dict[str, str]]]]:
    def signed(**overrides: Any) -> Callable[[HubBroker], tuple[Token, dict[str, str]]]:
        """Claims overrides; a callable is called with the current time."""

        def make(b: HubBroker) -> tuple[Token, dict[str, str]]:
            now = int(time.time())
            values = {k: v(now) if callable(v) else v for k, v in overrides.items()}
            return b.token(**values), {}

        return make

    def forged(b: HubBroker) -> tuple[Token, dict[str, str]]:
        t = b.token()
        other = SigningKey("k1")  # same kid, another key
        return t, {"password": b.sign(t.claims, other)}

    def unknown_kid(b: HubBroker) -> tuple[Token, dict[str, str]]:
        t = b.token()
        return t, {"password": b.sign(t.claims, SigningKey("k9"))}

    def alg_none(b: HubBroker) -> tuple[Token, dict[str, str]]:
        t = b.token()
        sig = t.value.rsplit(".", 1)[1]
        return t, {"password": _with_header(t.claims, {"alg": "none", "kid": "k1"}, sig)}

    def alg_none_unsigned(b: HubBroker) -> tuple[Token, dict[str, str]]:
        t = b.token()
        return t, {"password": jwt.encode(t.claims, None, algorithm="none")}

    def hs256(b: HubBroker) -> tuple[Token, dict[str, str]]:
        t = b.token()
        return t, {"password": hs256_with_public_key(b.keys[0], t.claims)}

    def other_clientid(b: HubBroker) -> tuple[Token, dict[str, str]]:
        return b.token(), {"client_id": f"a.someone.{uuid.uuid4().hex[:4]}"}

    def other_username(b: HubBroker) -> tuple[Token, dict[str, str]]:
        return b.token(), {"username": "u-someone-else"}

    def truncated(b: HubBroker) -> tuple[Token, dict[str, str]]:
        t = b.token()
        return t, {"password": t.value[:-8]}

    def oversize(b: HubBroker) -> tuple[Token, dict[str, str]]:
        t = b.token()
        head, body, sig = t.value.split(".")
        return t, {"password": f"{head}.{body}{'A' * 60_000}.{sig}"}

    many_rules = [rule("allow", "subscribe", f"tenants/a/x{i}") for i in range(300)]
    return {
        "forged signature": forged,
        "unknown kid": unknown_kid,
        "alg none": alg_none,
        "alg none, unsigned": alg_none_unsigned,
        "alg HS256 keyed with the public key": hs256,
        "expired": signed(exp=lambda now: now - 1, nbf=lambda now: now - 60),
        "nbf in the future": signed(nbf=lambda now: now + 60),
        "wrong aud": signed(aud="web"),
        "wrong iss": signed(iss="someone-else"),
        "unknown kind": signed(kind="admin"),
        "another client id": other_clientid,
        "another username": other_username,
        "truncated": truncated,
        "over 4096 bytes": oversize,
        "acl of 300 rules": signed(acl=many_rules),
        "empty acl": signed(acl=[]),
        **{f"missing {c}": signed(**{c: None}) for c in ("jti", "tenant", "exp", "acl", "aud")},
    }


REFUSALS = _refusals()


@pytest.mark.parametrize("case", list(REFUSALS))
def test_bad_tokens_are_refused_at_connect(broker: HubBroker, case: str) -> None:
    token, overrides = REFUSALS[case](broker)
    probe = broker.probe(token, **overrides)
    assert probe.connect().value == NOT_AUTHORIZED


def test_a_one_megabyte_password_is_never_accepted(broker: HubBroker) -> None:
    """MQTT strings stop at 64 KiB, so this CONNECT is oversize and malformed: the
    broker closes the connection without a successful CONNACK."""
    password = b"A" * 1_000_000
    var = b"\x00\x04MQTT\x05\xc2\x00\x3c\x00"
    payload = (
        b"".join(struct.pack("!H", len(s)) + s for s in (b"big-client", b"u-big", b"")) + password
    )
    body = var + payload
    length, encoded = len(body), b""
    while True:
        byte, length = length % 128, length // 128
        encoded += bytes([byte | (0x80 if length else 0)])
        if not length:
            break
    with socket.create_connection(("127.0.0.1", broker.mqtt_port), timeout=10) as sock:
        try:
            sock.sendall(b"\x10" + encoded + body)
        except (BrokenPipeError, ConnectionResetError):
            return
        reply = b""
        try:
            while chunk := sock.recv(4096):
                reply += chunk
        except ConnectionResetError:
            pass
    # Either nothing, or a CONNACK whose reason code is a failure.
    assert reply == b"" or (reply[0] == 0x20 and reply[3] >= 0x80)


@pytest.mark.parametrize("shape", ["token-shaped", "not token-shaped"])
def test_a_65535_byte_password_is_refused_and_the_broker_stays_up(
    broker: HubBroker, shape: str
) -> None:
    """The longest password MQTT can carry: token-shaped, it is refused here (over 4096
    bytes); otherwise Dynamic Security refuses it (the publisher's account)."""
    token = broker.token()
    if shape == "token-shaped":
        head, body, sig = token.value.split(".")
        password = f"{head}.{body}{'A' * (65_535 - len(token.value))}.{sig}"
        probe = broker.probe(token, password=password)
    else:
        password = "x" * 65_535
        probe = _own_account(broker, f"big-{uuid.uuid4().hex[:6]}")
        probe.client.username_pw_set(PUBLISHER, password)
    assert len(password) == 65_535
    assert probe.connect().value == NOT_AUTHORIZED
    still = broker.probe(broker.token())
    assert not still.connect().is_failure
    still.close()


# ---- who owns a token client's id ----


def _own_account(broker: HubBroker, client_id: str, **kw: Any) -> Probe:
    """The hub's publisher account (Dynamic Security: publish on tenants/#, nothing
    else) logging in on a given client id."""
    return Probe(
        client_id=client_id,
        username=PUBLISHER,
        password=broker.publisher_password,
        port=broker.mqtt_port,
        **kw,
    )


def test_a_dynsec_account_on_a_gone_token_clients_id_gets_its_own_rights(
    broker: HubBroker,
) -> None:
    """The token client disconnects (clean session: its context is freed, while its
    entry waits for exp); the next connection on that client id is a Dynamic Security
    account, whose context often reuses the freed one's address (measured on 2.0.11:
    from the fourth round on, every round). In dynsec-first order hub-auth never sees
    that login. The account has its own rights (publish only), never the token's
    (subscribe only)."""
    for _ in range(8):
        tenant = unique_tenant()
        token = broker.token(tenant=tenant)
        gone = broker.probe(token)
        assert not gone.connect().is_failure
        assert gone.subscribe(f"tenants/{tenant}/patients/#").value == GRANTED_QOS1
        gone.close()
        time.sleep(0.3)  # the broker frees the context on a later loop pass
        account = _own_account(broker, token.clientid)
        assert not account.connect().is_failure
        try:
            assert account.subscribe(f"tenants/{tenant}/patients/#").value == NOT_AUTHORIZED
            assert not account.publish(event_topic(tenant, "p-1"), b"{}").is_failure
        finally:
            account.close()
        time.sleep(0.2)


def test_a_non_token_login_on_a_token_client_id_cannot_inherit_the_tokens_rights(
    broker: HubBroker, publisher: Probe
) -> None:
    """The account takes over the token client's persistent session (and its
    subscription), but what it may subscribe to and receive is Dynamic Security's say."""
    tenant = unique_tenant()
    token = broker.token(tenant=tenant)
    owner = broker.probe(token, clean_start=False, session_expiry=300)
    assert not owner.connect().is_failure
    assert owner.subscribe(f"tenants/{tenant}/patients/#").value == GRANTED_QOS1
    owner.close()
    account = _own_account(broker, token.clientid, clean_start=False, session_expiry=0)
    assert not account.connect().is_failure
    try:
        assert account.session_present
        assert account.subscribe(f"tenants/{tenant}/patients/#").value == NOT_AUTHORIZED
        topic = event_topic(tenant, "p-1")
        assert not publisher.publish(topic, b"{}").is_failure
        with pytest.raises(TimeoutError):
            account.wait_for(lambda m: m.topic == topic, timeout=1.5)
    finally:
        account.close()


@pytest.mark.parametrize("attempt", ["wrong account password", "unknown account", "bad token"])
def test_a_failed_login_on_a_token_client_id_keeps_its_offline_session(
    broker: HubBroker, publisher: Probe, attempt: str
) -> None:
    """Anyone may try a client id; a refused login must not cost the token client's
    offline session what its acl lets it queue."""
    tenant = unique_tenant()
    token = broker.token(tenant=tenant)
    owner = broker.probe(token, clean_start=False, session_expiry=300)
    assert not owner.connect().is_failure
    assert owner.subscribe(f"tenants/{tenant}/patients/#").value == GRANTED_QOS1
    owner.close()

    if attempt == "bad token":
        forged = broker.sign(token.claims, SigningKey("k1"))
        intruder = broker.probe(token, password=forged, clean_start=False, session_expiry=300)
    else:
        username = PUBLISHER if attempt == "wrong account password" else "nobody"
        intruder = Probe(
            client_id=token.clientid,
            username=username,
            password="not-the-password",
            port=broker.mqtt_port,
            clean_start=False,
        )
    assert intruder.connect().value == NOT_AUTHORIZED

    topic = event_topic(tenant, "p-1")
    assert not publisher.publish(topic, b"queued").is_failure
    back = broker.probe(token, clean_start=False, session_expiry=300)
    assert not back.connect().is_failure
    try:
        assert back.session_present
        assert back.wait_for(lambda m: m.topic == topic).payload == b"queued"
    finally:
        back.close()
