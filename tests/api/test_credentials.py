"""Broker credentials are signed tokens: issued per session, bounded per user, expiring
and revocable, and the broker (its token plugin) enforces all of it by itself."""

from __future__ import annotations

import base64
import json
import os
import secrets
import signal
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt

from tests.support.clinic import Clinic
from tests.support.mqtt import WAIT, Probe, dynsec
from tests.support.stack import Stack


def _segment(token: str, index: int) -> dict[str, Any]:
    part = token.split(".")[index]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))  # type: ignore[no-any-return]


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
    # The password never reaches the api's log.
    assert creds["password"] not in stack.api.log_file.read_text()


def test_the_password_is_an_es256_token_that_the_public_jwks_verifies(
    stack: Stack, clinic: Clinic
) -> None:
    creds = stack.credentials(clinic.front_desk)
    header = _segment(creds["password"], 0)
    assert header["alg"] == "ES256"
    jwks = httpx.get(stack.api.base_url + "/realtime/jwks").json()  # no token needed
    assert all("d" not in k for k in jwks["keys"])  # public keys only
    (jwk,) = [k for k in jwks["keys"] if k["kid"] == header["kid"]]
    key = jwt.PyJWK(jwk).key
    claims = jwt.decode(creds["password"], key, algorithms=["ES256"], audience="mqtt")
    assert claims["iss"] == "ehr-hub"
    assert claims["kind"] == "session"
    assert claims["sub"] == "fd-1"
    assert claims["tenant"] == clinic.tenant
    assert claims["clientid"] == creds["clientId"]
    assert claims["username"] == creds["username"]
    assert claims["jti"]
    assert claims["nbf"] <= time.time() < claims["exp"]
    assert datetime.fromtimestamp(claims["exp"], UTC) == datetime.fromisoformat(creds["expiresAt"])
    t = clinic.tenant
    assert claims["acl"] == [
        {"permission": "allow", "action": "subscribe", "topic": f"tenants/{t}/patients/#"},
        {"permission": "allow", "action": "subscribe", "topic": f"tenants/{t}/meta/#"},
        {"permission": "allow", "action": "subscribe", "topic": f"tenants/{t}/users/fd-1/#"},
        {"permission": "deny", "action": "all", "topic": "#"},
    ]
    # The broker reads the same keys from the file the api wrote.
    on_disk = json.loads(stack.broker.layout.jwks_file.read_text())
    assert on_disk == jwks


def test_issuing_changes_no_broker_state(stack: Stack, clinic: Clinic) -> None:
    """No Dynamic Security client per session: only the hub's own accounts live there."""
    for i in range(3):
        stack.connected_probe(stack.token(clinic.tenant, f"u-state-{i}", "front_desk")).close()
    admin = stack.broker.admin_probe()
    assert not admin.connect().is_failure
    try:
        admin.subscribe("$CONTROL/dynamic-security/v1/response")
        (listed,) = dynsec(admin, {"command": "listClients"})
        clients = set(listed["data"]["clients"])
        assert {"hub-admin", "hub-service"} <= clients
        assert not [c for c in clients if c.startswith(("s.", "session:"))], clients
    finally:
        admin.close()


def test_the_broker_closes_an_expired_session_while_the_api_is_stopped(
    stack: Stack, clinic: Clinic
) -> None:
    token = stack.token(clinic.tenant, "fd-short", "front_desk", ttl=4)
    creds = stack.credentials(token)
    expires = datetime.fromisoformat(creds["expiresAt"])
    assert expires <= datetime.now(UTC) + timedelta(seconds=5)
    live = stack.probe(creds)
    assert not live.connect().is_failure
    assert not live.subscribe(f"tenants/{clinic.tenant}/patients/#").is_failure
    assert stack.api.proc is not None
    os.kill(stack.api.proc.pid, signal.SIGSTOP)  # nobody at the api side can act
    try:
        rc = live.wait_disconnect(timeout=WAIT)
        closed_at = datetime.now(UTC)
    finally:
        os.kill(stack.api.proc.pid, signal.SIGCONT)
    assert rc.is_failure
    assert closed_at >= expires
    live.close()
    assert stack.probe(creds).connect().is_failure


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
    assert stack.probe(creds).connect().is_failure


def test_renewal_keeps_the_client_id_and_the_persistent_session(
    stack: Stack, clinic: Clinic
) -> None:
    creds = stack.credentials(clinic.front_desk)
    first = stack.probe(creds, clean_start=False, session_expiry=600)
    assert not first.connect().is_failure
    first.subscribe(f"tenants/{clinic.tenant}/patients/+/appointment/#")
    renewed = stack.credentials(clinic.front_desk, clientId=creds["clientId"])
    assert renewed["clientId"] == creds["clientId"]
    assert renewed["username"] == creds["username"]
    assert renewed["password"] != creds["password"]
    assert _segment(renewed["password"], 1)["jti"] != _segment(creds["password"], 1)["jti"]
    # The client leaves and comes back with the renewed token on the same client id.
    first.close()
    appt = clinic.book()  # happens while it reconnects: the broker queues it
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


def test_a_token_works_only_with_its_own_client_id_and_username(
    stack: Stack, clinic: Clinic
) -> None:
    creds = stack.credentials(clinic.front_desk)
    other = stack.credentials(clinic.front_desk)
    # Another session's client id: a takeover of that session is refused.
    assert stack.probe(creds, client_id=other["clientId"]).connect().is_failure
    assert stack.probe({**creds, "username": other["username"]}).connect().is_failure
    assert not stack.probe(creds).connect().is_failure


def test_live_sessions_per_user_are_bounded(stack: Stack, clinic: Clinic) -> None:
    user = f"fd-{uuid.uuid4().hex[:6]}"
    token = stack.token(clinic.tenant, user, "front_desk")
    issued = [stack.credentials(token) for _ in range(9)]  # the default cap is 8
    oldest = stack.probe(issued[0])
    assert oldest.connect().is_failure
    newest = stack.probe(issued[-1])
    assert not newest.connect().is_failure
    newest.close()


def test_a_revocation_made_while_the_broker_is_down_reaches_it_when_it_is_back(
    private_stack: Stack,
) -> None:
    stack = private_stack
    token = stack.token("t-offline", "fd-1", "front_desk")
    creds = stack.credentials(token)
    stack.broker.stop()
    # Recorded in the database at once; the broker gets it when the admin reconnects.
    r = stack.http(token).delete(f"/realtime/credentials/{creds['clientId']}")
    assert r.status_code == 204
    stack.broker.start()
    deadline = time.monotonic() + WAIT
    while not stack.probe(creds).connect().is_failure:
        assert time.monotonic() < deadline, "the broker still accepts a revoked token"
        time.sleep(0.2)


def test_a_revoked_token_stays_refused_after_a_broker_restart(private_stack: Stack) -> None:
    stack = private_stack
    token = stack.token("t-restart", "fd-1", "front_desk")
    creds = stack.credentials(token)
    assert stack.http(token).delete(f"/realtime/credentials/{creds['clientId']}").status_code == 204
    assert stack.probe(creds).connect().is_failure
    stack.api.stop()  # nobody could send the revocation again
    stack.broker.stop()
    stack.broker.start()
    assert stack.probe(creds).connect().is_failure


def test_sessions_left_in_dynamic_security_by_the_old_design_are_removed(
    private_stack: Stack,
) -> None:
    """A broker upgraded from per-session dynsec clients: the api deletes them (and
    their roles) at start, since nothing would ever expire them."""
    stack = private_stack
    legacy, password = "s.t-up.u-1.0badc0de", secrets.token_urlsafe(16)
    admin = stack.broker.admin_probe()
    assert not admin.connect().is_failure
    try:
        admin.subscribe("$CONTROL/dynamic-security/v1/response")
        acls = [
            {"acltype": "subscribePattern", "topic": "tenants/t-up/#", "allow": True},
            {"acltype": "publishClientReceive", "topic": "tenants/t-up/#", "allow": True},
        ]
        replies = dynsec(
            admin,
            {"command": "createRole", "rolename": "tenant.t-up", "acls": acls},
            {"command": "createClient", "username": legacy, "password": password},
            {"command": "addClientRole", "username": legacy, "rolename": "tenant.t-up"},
        )
        assert all("error" not in r for r in replies), replies
    finally:
        admin.close()
    old = Probe(
        client_id="t-up.u-1.0badc0de",
        username=legacy,
        password=password,
        port=stack.broker.mqtt_port,
    )
    assert not old.connect().is_failure
    stack.api.stop()
    stack.api.start()  # its broker bootstrap removes them
    assert old.wait_disconnect().is_failure
    old.close()
    again = Probe(
        client_id="t-up.u-1.0badc0de",
        username=legacy,
        password=password,
        port=stack.broker.mqtt_port,
    )
    assert again.connect().is_failure
