"""hub-auth over time: expiry and revocation close live connections (within about a
second), revocations survive a restart, a session takeover keeps the new connection's
rights, and key rotation through the JWKS file."""

from __future__ import annotations

import json
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.broker.hubauth import (
    CONTROL,
    CONTROL_RESPONSE,
    HubBroker,
    SigningKey,
    Token,
    control,
    rule,
    wait_until,
)
from tests.support.mqtt import Probe

NOT_AUTHORIZED = 0x87
ADMINISTRATIVE_ACTION = 0x98


@pytest.fixture
def admin(own_broker: HubBroker) -> Iterator[Probe]:
    a = own_broker.admin()
    assert not a.connect().is_failure
    assert not a.subscribe(CONTROL_RESPONSE).is_failure
    yield a
    a.close()


def connect(broker: HubBroker, token: Token, **kw: object) -> Probe:
    probe = broker.probe(token, **kw)  # type: ignore[arg-type]
    rc = probe.connect()
    assert not rc.is_failure, rc
    return probe


def refused(broker: HubBroker, token: Token) -> bool:
    return broker.probe(token).connect().value == NOT_AUTHORIZED


def test_connection_closes_at_token_expiry(own_broker: HubBroker) -> None:
    """The contract's deadline is 1 s after exp; the test allows 2 s so a slow machine
    does not fail it, and checks the connection is not closed early."""
    exp = int(time.time()) + 3
    token = own_broker.token(exp=exp)
    probe = connect(own_broker, token)
    rc = probe.wait_disconnect(timeout=exp - time.time() + 5)
    closed_at = time.time()
    probe.close()
    assert rc.value == ADMINISTRATIVE_ACTION
    assert exp <= closed_at < exp + 2
    assert refused(own_broker, token)


def test_revoking_a_client_id_closes_it_and_refuses_it_after_a_restart(
    own_broker: HubBroker, admin: Probe
) -> None:
    token = own_broker.token()
    renewed = own_broker.token(clientid=token.clientid, username=token.username)
    other = own_broker.token()
    probe, bystander = connect(own_broker, token), connect(own_broker, other)

    until = token.claims["exp"]
    (answer,) = control(admin, {"command": "revoke", "clientid": token.clientid, "until": until})
    revoked_at = time.time()
    assert answer["command"] == "revoke"
    assert "error" not in answer
    assert probe.wait_disconnect(timeout=10).value == ADMINISTRATIVE_ACTION
    assert time.time() - revoked_at < 2
    probe.close()
    # Every token of that client id, also a renewal, until `until`; nobody else.
    assert refused(own_broker, token)
    assert refused(own_broker, renewed)
    assert bystander.client.is_connected()
    bystander.close()

    admin.close()
    own_broker.restart()
    assert refused(own_broker, token)
    a = own_broker.admin()
    a.connect()
    a.subscribe(CONTROL_RESPONSE)
    (listing,) = control(a, {"command": "listRevocations"})
    a.close()
    assert {"clientid": token.clientid, "until": until} in listing["revocations"]


def test_revoking_a_jti_refuses_only_that_token(own_broker: HubBroker, admin: Probe) -> None:
    token = own_broker.token()
    renewed = own_broker.token(clientid=token.clientid, username=token.username)
    probe = connect(own_broker, token)
    (answer,) = control(
        admin, {"command": "revoke", "jti": token.claims["jti"], "until": token.claims["exp"]}
    )
    assert "error" not in answer
    assert probe.wait_disconnect(timeout=10).value == ADMINISTRATIVE_ACTION
    probe.close()
    assert refused(own_broker, token)
    connect(own_broker, renewed).close()

    own_broker.restart()
    assert refused(own_broker, token)


def test_bad_commands_get_an_error_and_change_nothing(own_broker: HubBroker, admin: Probe) -> None:
    answers = control(
        admin,
        {"command": "revoke", "until": 2_000_000_000},
        {"command": "revoke", "clientid": "x", "jti": "y", "until": 2_000_000_000},
        {"command": "revoke", "clientid": "x", "until": "tomorrow"},
        {"command": "revokeEverything"},
        {"command": "listRevocations"},
    )
    assert [bool(a.get("error")) for a in answers] == [True, True, True, True, False]
    assert answers[-1]["revocations"] == []


def test_a_token_client_cannot_send_control_commands(own_broker: HubBroker, admin: Probe) -> None:
    victim = own_broker.token()
    victim_probe = connect(own_broker, victim)
    # Even with an acl that allows publishing everywhere, `#` never reaches `$CONTROL`.
    attacker = own_broker.token(acl=[rule("allow", "all", "#")])
    attacker_probe = connect(own_broker, attacker)
    body = (
        f'{{"commands":[{{"command":"revoke","clientid":"{victim.clientid}","until":2000000000}}]}}'
    )
    assert attacker_probe.publish(CONTROL, body).value == NOT_AUTHORIZED
    (listing,) = control(admin, {"command": "listRevocations"})
    assert listing["revocations"] == []
    assert victim_probe.client.is_connected()
    attacker_probe.close()
    victim_probe.close()


def test_session_takeover_keeps_the_new_connections_rights(own_broker: HubBroker) -> None:
    """The old connection's DISCONNECT comes after the new one authenticated; it must
    not remove the new connection's entry (else every delivery to it is refused)."""
    tenant = f"t{uuid.uuid4().hex[:6]}"
    token = own_broker.token(tenant=tenant)
    first = connect(own_broker, token, clean_start=False, session_expiry=300)
    assert not first.subscribe(f"tenants/{tenant}/patients/#").is_failure
    second = connect(own_broker, token, clean_start=False, session_expiry=300)
    first.wait_disconnect()  # 2.0.11 closes the socket (paho: "Unspecified error")
    first.close()
    assert second.session_present

    publisher = own_broker.publisher()
    publisher.connect()
    topic = f"tenants/{tenant}/patients/p-1/appointment/a-1/created"
    publisher.publish(topic, b"1")
    second.wait_for(lambda m: m.payload == b"1")
    assert not second.subscribe(f"tenants/{tenant}/patients/+/appointment/#").is_failure
    publisher.publish(topic, b"2")
    second.wait_for(lambda m: m.payload == b"2")
    publisher.close()
    second.close()


def test_an_offline_session_queues_only_what_its_acl_allows(own_broker: HubBroker) -> None:
    tenant = f"t{uuid.uuid4().hex[:6]}"
    acl = [
        rule("deny", "subscribe", f"tenants/{tenant}/patients/p-secret/#"),
        rule("allow", "subscribe", f"tenants/{tenant}/patients/#"),
    ]
    token = own_broker.token(tenant=tenant, acl=acl)
    probe = connect(own_broker, token, clean_start=False, session_expiry=300)
    assert not probe.subscribe(f"tenants/{tenant}/patients/#").is_failure
    probe.close()

    publisher = own_broker.publisher()
    publisher.connect()
    publisher.publish(f"tenants/{tenant}/patients/p-secret/claim/c-1/created", b"secret")
    publisher.publish(f"tenants/{tenant}/patients/p-1/claim/c-2/created", b"queued")
    publisher.close()

    back = connect(own_broker, token, clean_start=False, session_expiry=300)
    assert back.session_present
    assert back.wait_for(lambda m: True).payload == b"queued"
    assert back.drain() == []
    back.close()


def test_key_rotation_through_the_jwks_file(own_broker: HubBroker) -> None:
    old, new = own_broker.keys[0], SigningKey("k2")
    old_token = own_broker.token(key=old)
    own_broker.write_jwks([old, new])
    new_token = own_broker.token(key=new)
    assert wait_until(lambda: not refused(own_broker, new_token), timeout=5)
    connect(own_broker, old_token).close()

    own_broker.write_jwks([new])
    assert wait_until(lambda: refused(own_broker, own_broker.token(key=old)), timeout=5)
    connect(own_broker, new_token).close()


def test_sighup_reverifies_live_connections(own_broker: HubBroker) -> None:
    """A reload (SIGHUP) re-reads the keys and re-checks every live token: a
    connection whose key was withdrawn is closed, the others stay."""
    old, new = own_broker.keys[0], SigningKey("k2")
    own_broker.write_jwks([old, new])
    stays_token = own_broker.token(key=new)
    assert wait_until(lambda: not refused(own_broker, stays_token), timeout=5)
    goes, stays = connect(own_broker, own_broker.token(key=old)), connect(own_broker, stays_token)
    own_broker.write_jwks([new])
    assert own_broker.process.process is not None
    own_broker.process.process.send_signal(signal.SIGHUP)
    goes.wait_disconnect(timeout=10)
    time.sleep(0.5)
    assert stays.client.is_connected()
    goes.close()
    stays.close()


def test_keys_file_written_after_the_broker_started(plugin_built: None, tmp_path: Path) -> None:
    broker = HubBroker(tmp_path / "late")
    broker.keys_file.unlink()
    broker.start()
    try:
        token = broker.token()
        assert refused(broker, token)
        broker.write_jwks(broker.keys)
        assert wait_until(lambda: not refused(broker, token), timeout=5)
    finally:
        broker.stop()


def test_a_corrupt_revocations_file_stops_the_broker(plugin_built: None, tmp_path: Path) -> None:
    """Starting without the revocations would let revoked tokens in again."""
    broker = HubBroker(tmp_path / "corrupt")
    broker.revocations_file.write_text('{"revocations": [{"clientid": ', encoding="utf-8")
    with pytest.raises(RuntimeError, match="exited"):
        broker.start()
    assert "revocations file" in broker.log()


def test_a_revoke_that_changes_nothing_does_not_rewrite_the_file(
    own_broker: HubBroker, admin: Probe
) -> None:
    token = own_broker.token()
    until = token.claims["exp"]
    revoke = {"command": "revoke", "clientid": token.clientid, "until": until}
    (answer,) = control(admin, revoke)
    assert "error" not in answer
    saved = own_broker.revocations_file.stat()
    # The same, an earlier until, and both again in one message: nothing to save.
    answers = control(admin, revoke, {**revoke, "until": until - 60}, revoke)
    assert [a.get("error") for a in answers] == [None, None, None]
    again = own_broker.revocations_file.stat()
    assert (again.st_ino, again.st_mtime_ns) == (saved.st_ino, saved.st_mtime_ns)
    # A later until is a change: saved (once for the message).
    answers = control(admin, {**revoke, "until": until + 60}, revoke)
    assert [a.get("error") for a in answers] == [None, None]
    assert own_broker.revocations_file.stat().st_ino != saved.st_ino
    (listing,) = control(admin, {"command": "listRevocations"})
    assert listing["revocations"] == [{"clientid": token.clientid, "until": until + 60}]


def test_a_full_revocation_list_still_closes_the_live_connection(
    plugin_built: None, tmp_path: Path
) -> None:
    """Fail closed: the revocation cannot be recorded (100,000 live entries), but the
    connection it names is closed, and the answer says what did not happen."""
    broker = HubBroker(tmp_path / "full")
    until = int(time.time()) + 3600
    fill = [{"jti": f"fill-{i:06d}", "until": until} for i in range(100_000)]
    broker.revocations_file.write_text(json.dumps({"revocations": fill}), encoding="utf-8")
    broker.start()
    try:
        a = broker.admin()
        assert not a.connect().is_failure
        assert not a.subscribe(CONTROL_RESPONSE).is_failure
        token = broker.token()
        probe = connect(broker, token)
        (answer,) = control(
            a, {"command": "revoke", "clientid": token.clientid, "until": token.claims["exp"]}
        )
        assert "full" in answer["error"]
        assert probe.wait_disconnect(timeout=10).value == ADMINISTRATIVE_ACTION
        probe.close()
        a.close()
    finally:
        broker.stop()


def test_a_revocation_that_cannot_be_saved_still_closes_the_live_connection(
    own_broker: HubBroker, admin: Probe
) -> None:
    own_broker.revocations_file.unlink(missing_ok=True)
    own_broker.revocations_file.mkdir()  # the rename over it fails
    token = own_broker.token()
    probe = connect(own_broker, token)
    (answer,) = control(
        admin, {"command": "revoke", "jti": token.claims["jti"], "until": token.claims["exp"]}
    )
    assert answer["error"] == "Applied, but not saved to disk."
    assert probe.wait_disconnect(timeout=10).value == ADMINISTRATIVE_ACTION
    probe.close()
    assert refused(own_broker, token)
    own_broker.revocations_file.rmdir()


def test_revoking_a_client_id_issued_before_a_moment(own_broker: HubBroker, admin: Probe) -> None:
    """A kiosk keeps its client id: revoking the tokens issued before a moment closes
    and refuses those, and lets a token issued since connect (also after a restart)."""
    now = int(time.time())
    old = own_broker.token(iat=now - 120, nbf=now - 120)
    clientid, username = old.clientid, old.username
    older = own_broker.token(clientid=clientid, username=username, iat=now - 30, nbf=now - 30)
    fresh = own_broker.token(clientid=clientid, username=username, iat=now, nbf=now)
    probe = connect(own_broker, old)
    revoke = {"command": "revoke", "clientid": clientid, "until": now + 600, "issuedBefore": now}
    (answer,) = control(admin, revoke)
    assert "error" not in answer
    assert probe.wait_disconnect(timeout=10).value == ADMINISTRATIVE_ACTION
    probe.close()
    assert refused(own_broker, old)
    assert refused(own_broker, older)
    live = connect(own_broker, fresh)
    # A repeat with an earlier issuedBefore changes nothing and closes nothing.
    saved = own_broker.revocations_file.stat()
    (answer,) = control(admin, {**revoke, "issuedBefore": now - 60})
    assert "error" not in answer
    assert own_broker.revocations_file.stat().st_ino == saved.st_ino
    time.sleep(0.5)
    assert live.client.is_connected()
    live.close()
    (listing,) = control(admin, {"command": "listRevocations"})
    assert listing["revocations"] == [
        {"clientid": clientid, "until": now + 600, "issuedBefore": now}
    ]

    admin.close()
    own_broker.restart()
    assert refused(own_broker, older)
    connect(own_broker, fresh).close()
    # Without issuedBefore: every token of the client id (the larger, "every token", wins).
    a = own_broker.admin()
    a.connect()
    a.subscribe(CONTROL_RESPONSE)
    (answer,) = control(a, {"command": "revoke", "clientid": clientid, "until": now + 600})
    assert "error" not in answer
    (listing,) = control(a, {"command": "listRevocations"})
    a.close()
    assert listing["revocations"] == [{"clientid": clientid, "until": now + 600}]
    assert refused(own_broker, fresh)


def test_issued_before_is_checked(own_broker: HubBroker, admin: Probe) -> None:
    answers = control(
        admin,
        {"command": "revoke", "jti": "j-1", "until": 2_000_000_000, "issuedBefore": 1_900_000_000},
        {"command": "revoke", "clientid": "k.1", "until": 2_000_000_000, "issuedBefore": "now"},
        {"command": "revoke", "clientid": "k.1", "until": 2_000_000_000, "issuedBefore": 1.5},
        {"command": "revoke", "clientid": "k.1", "until": 2_000_000_000, "issuedBefore": 0},
        {"command": "listRevocations"},
    )
    assert [bool(a.get("error")) for a in answers] == [True, True, True, True, False]
    assert answers[-1]["revocations"] == []


def test_a_token_of_a_key_just_written_is_accepted_at_once(own_broker: HubBroker) -> None:
    """The api writes the JWKS at its start, often after the broker started: a token of
    the new key right after the write is accepted, not refused until the plugin's
    once-a-second look at the file."""
    new = SigningKey("k-fresh")
    for _ in range(5):  # each time the very first login after the write
        own_broker.write_jwks([*own_broker.keys, new])
        probe = own_broker.probe(own_broker.token(key=new))
        try:
            assert not probe.connect().is_failure
        finally:
            probe.close()
        new = SigningKey(f"k-fresh-{uuid.uuid4().hex[:6]}")
