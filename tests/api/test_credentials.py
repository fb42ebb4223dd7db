"""Broker credentials: issued per session, bounded, expiring, revocable; the broker
refuses dead credentials and disconnects live sessions that hold them."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

from tests.support.clinic import Clinic
from tests.support.mqtt import WAIT, dynsec
from tests.support.stack import Stack


def test_credentials_answer_matches_the_contract(stack: Stack, clinic: Clinic) -> None:
    creds = stack.credentials(clinic.front_desk)
    assert set(creds) >= {
        "clientId",
        "username",
        "password",
        "expiresAt",
        "websocketUrl",
        "mqttUrl",
        "topicPrefix",
        "latestSeq",
    }
    assert creds["clientId"].startswith(f"{clinic.tenant}.fd-1.")
    assert creds["topicPrefix"] == f"tenants/{clinic.tenant}/"
    assert creds["websocketUrl"] == f"ws://localhost:{stack.broker.ws_port}/mqtt"
    assert creds["mqttUrl"] == f"mqtt://localhost:{stack.broker.mqtt_port}"
    assert creds["latestSeq"] == clinic.latest_seq()
    assert len(creds["password"]) >= 24
    # The password never reaches the api's log.
    assert creds["password"] not in stack.api.log_file.read_text()


def test_expiry_is_capped_by_the_token_and_enforced_by_the_broker(
    stack: Stack, clinic: Clinic
) -> None:
    token = stack.token(clinic.tenant, "fd-short", "front_desk", ttl=4)
    creds = stack.credentials(token)
    expires = datetime.fromisoformat(creds["expiresAt"])
    assert expires <= datetime.now(UTC) + timedelta(seconds=5)
    live = stack.probe(creds)
    assert not live.connect().is_failure
    live.subscribe(f"tenants/{clinic.tenant}/patients/#")
    # Nobody asks: the reaper removes the expired client and the broker kicks it.
    rc = live.wait_disconnect(timeout=WAIT + 5)
    assert rc.is_failure
    live.close()
    again = stack.probe(creds)
    assert again.connect().is_failure


def test_revocation_disconnects_a_live_session(stack: Stack, clinic: Clinic) -> None:
    creds = stack.credentials(clinic.front_desk)
    live = stack.probe(creds)
    assert not live.connect().is_failure
    r = stack.http(clinic.front_desk).delete(f"/realtime/credentials/{creds['clientId']}")
    assert r.status_code == 204
    assert live.wait_disconnect().is_failure
    live.close()
    assert stack.probe(creds).connect().is_failure
    # Revoking again, or someone else's session, is a 404.
    assert (
        stack.http(clinic.front_desk)
        .delete(f"/realtime/credentials/{creds['clientId']}")
        .status_code
        == 404
    )


def test_a_user_cannot_revoke_another_users_session_but_an_admin_can(
    stack: Stack, clinic: Clinic, other_clinic: Clinic
) -> None:
    creds = stack.credentials(clinic.front_desk)
    colleague = stack.token(clinic.tenant, "fd-2", "front_desk")
    assert (
        stack.http(colleague).delete(f"/realtime/credentials/{creds['clientId']}").status_code
        == 404
    )
    assert (
        stack.http(other_clinic.admin)
        .delete(f"/realtime/credentials/{creds['clientId']}")
        .status_code
        == 404
    )
    still_valid = stack.probe(creds)
    assert not still_valid.connect().is_failure
    still_valid.close()
    assert (
        stack.http(clinic.admin).delete(f"/realtime/credentials/{creds['clientId']}").status_code
        == 204
    )


def test_renewal_keeps_the_client_id_and_the_persistent_session(
    stack: Stack, clinic: Clinic
) -> None:
    creds = stack.credentials(clinic.front_desk)
    first = stack.probe(creds, clean_start=False, session_expiry=600)
    assert not first.connect().is_failure
    first.subscribe(f"tenants/{clinic.tenant}/patients/+/appointment/#")
    renewed = stack.credentials(clinic.front_desk, clientId=creds["clientId"])
    assert renewed["clientId"] == creds["clientId"]
    assert renewed["password"] != creds["password"]
    # The old password stops working: the broker disconnects the session.
    assert first.wait_disconnect().is_failure
    first.close()
    appt = clinic.book()  # happens while the browser reconnects
    assert stack.probe(creds, clean_start=False, session_expiry=600).connect().is_failure
    second = stack.probe(renewed, clean_start=False, session_expiry=600)
    try:
        assert not second.connect().is_failure
        assert second.session_present
        second.wait_event("appointment:created", appt["id"])
    finally:
        second.close()
    # Renewing someone else's session is refused.
    colleague = stack.token(clinic.tenant, "fd-2", "front_desk")
    r = stack.http(colleague).post("/realtime/credentials", json={"clientId": creds["clientId"]})
    assert r.status_code == 404


def test_live_sessions_per_user_are_bounded(stack: Stack, clinic: Clinic) -> None:
    user = f"fd-{uuid.uuid4().hex[:6]}"
    token = stack.token(clinic.tenant, user, "front_desk")
    issued = [stack.credentials(token) for _ in range(9)]  # the default cap is 8
    oldest = stack.probe(issued[0])
    assert oldest.connect().is_failure
    newest = stack.probe(issued[-1])
    assert not newest.connect().is_failure
    newest.close()


def test_deleting_a_role_held_by_issued_clients_does_not_crash_the_broker(
    stack: Stack, clinic: Clinic
) -> None:
    """Mosquitto #2660: roles given inline at createClient lose their back-link and a
    later deleteRole segfaults the broker. The hub assigns roles with addClientRole."""
    creds = [
        stack.credentials(stack.token(clinic.tenant, f"u-{i}", "front_desk")) for i in range(3)
    ]
    admin = stack.broker.admin_probe()
    assert not admin.connect().is_failure
    try:
        admin.subscribe("$CONTROL/dynamic-security/v1/response")
        (reply,) = dynsec(admin, {"command": "getClient", "username": creds[0]["username"]})
        roles = {r["rolename"] for r in reply["data"]["client"]["roles"]}
        assert roles == {f"tenant.{clinic.tenant}", f"user.{clinic.tenant}.u-0"}
        assert reply["data"]["client"]["clientid"] == creds[0]["clientId"]
        (deleted,) = dynsec(admin, {"command": "deleteRole", "rolename": f"tenant.{clinic.tenant}"})
        assert "error" not in deleted
        (listed,) = dynsec(admin, {"command": "listRoles"})
        assert f"tenant.{clinic.tenant}" not in listed["data"]["roles"]
    finally:
        admin.close()
    assert stack.broker.running
    # The broker still serves; the clients lost the tenant role's rights, as asked.
    probe = stack.probe(creds[1])
    try:
        assert not probe.connect().is_failure
        assert probe.subscribe(f"tenants/{clinic.tenant}/patients/#").is_failure
    finally:
        probe.close()


def test_reaper_keeps_the_broker_client_count_bounded(stack: Stack, clinic: Clinic) -> None:
    """Expired sessions leave the broker, not only the database."""
    token = stack.token(clinic.tenant, f"fd-{uuid.uuid4().hex[:6]}", "front_desk", ttl=3)
    usernames = {stack.credentials(token)["username"] for _ in range(3)}
    admin = stack.broker.admin_probe()
    assert not admin.connect().is_failure
    try:
        admin.subscribe("$CONTROL/dynamic-security/v1/response")
        deadline = time.monotonic() + WAIT + 5
        while True:
            (listed,) = dynsec(admin, {"command": "listClients"})
            remaining = usernames & set(listed["data"]["clients"])
            if not remaining or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert remaining == set()
    finally:
        admin.close()


def _roles(stack: Stack) -> set[str]:
    admin = stack.broker.admin_probe()
    assert not admin.connect().is_failure
    try:
        admin.subscribe("$CONTROL/dynamic-security/v1/response")
        (listed,) = dynsec(admin, {"command": "listRoles"})
        return set(listed["data"]["roles"])
    finally:
        admin.close()


def test_a_users_role_leaves_the_broker_with_their_last_session(
    stack: Stack, clinic: Clinic
) -> None:
    user = f"fd-{uuid.uuid4().hex[:6]}"
    token = stack.token(clinic.tenant, user, "front_desk")
    role = f"user.{clinic.tenant}.{user}"
    first, second = stack.credentials(token), stack.credentials(token)
    http = stack.http(token)
    assert http.delete(f"/realtime/credentials/{first['clientId']}").status_code == 204
    assert role in _roles(stack)
    assert http.delete(f"/realtime/credentials/{second['clientId']}").status_code == 204
    assert role not in _roles(stack)
    # Signing in again brings it back, with its rights.
    probe = stack.connected_probe(token)
    try:
        assert not probe.subscribe(f"tenants/{clinic.tenant}/users/{user}/#").is_failure
    finally:
        probe.close()


def test_issuance_recovers_when_a_role_was_deleted_elsewhere(stack: Stack, clinic: Clinic) -> None:
    """Another api process may reap a user's last session and delete the role this
    process still remembers; issuance makes the role again instead of failing."""
    user = f"fd-{uuid.uuid4().hex[:6]}"
    token = stack.token(clinic.tenant, user, "front_desk")
    stack.credentials(token)
    admin = stack.broker.admin_probe()
    assert not admin.connect().is_failure
    try:
        admin.subscribe("$CONTROL/dynamic-security/v1/response")
        (deleted,) = dynsec(
            admin, {"command": "deleteRole", "rolename": f"user.{clinic.tenant}.{user}"}
        )
        assert "error" not in deleted
    finally:
        admin.close()
    probe = stack.connected_probe(token)
    try:
        assert not probe.subscribe(f"tenants/{clinic.tenant}/users/{user}/#").is_failure
        assert not probe.subscribe(f"tenants/{clinic.tenant}/patients/#").is_failure
    finally:
        probe.close()
