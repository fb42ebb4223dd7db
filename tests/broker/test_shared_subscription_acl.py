"""How Mosquitto 2.0.11's Dynamic Security checks a shared subscription: against the
whole filter, `$share/<group>/` included. The hub's service role (hub.mosquitto) relies
on this for the kiosk responder."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.mqtt import Probe, dynsec
from tests.support.stack import Broker

NOT_AUTHORIZED = 0x87


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path / "data")
    b.start()
    yield b
    b.stop()


def _client(broker: Broker, admin: Probe, name: str, acls: list[tuple[str, str]]) -> Probe:
    password = secrets.token_urlsafe(16)
    replies = dynsec(
        admin,
        {
            "command": "createRole",
            "rolename": name,
            "acls": [{"acltype": t, "topic": f, "allow": True, "priority": 0} for t, f in acls],
        },
        {"command": "createClient", "username": name, "password": password},
        {"command": "addClientRole", "username": name, "rolename": name},
    )
    assert all("error" not in r for r in replies), replies
    probe = Probe(client_id=name, username=name, password=password, port=broker.mqtt_port)
    assert not probe.connect().is_failure
    return probe


def test_a_shared_subscription_is_checked_with_its_share_prefix(broker: Broker) -> None:
    admin = broker.admin_probe()
    assert not admin.connect().is_failure
    assert not admin.subscribe("$CONTROL/dynamic-security/v1/response").is_failure
    try:
        plain = _client(
            broker, admin, "plain", [("subscribePattern", "tenants/+/kiosks/+/requests")]
        )
        shared = _client(
            broker,
            admin,
            "shared",
            [
                ("subscribePattern", "$share/hub-kiosk/tenants/+/kiosks/+/requests"),
                ("publishClientReceive", "tenants/+/kiosks/+/requests"),
            ],
        )
        sender = _client(broker, admin, "sender", [("publishClientSend", "tenants/#")])
        try:
            # The plain filter's ACL does not cover the shared one...
            assert plain.subscribe("tenants/+/kiosks/+/requests").value == 1
            assert (
                plain.subscribe("$share/hub-kiosk/tenants/+/kiosks/+/requests").value
                == NOT_AUTHORIZED
            )
            # ...an ACL naming the group does, for that group and filter only...
            assert (
                shared.subscribe("$share/other/tenants/+/kiosks/+/requests").value == NOT_AUTHORIZED
            )
            assert shared.subscribe("$share/hub-kiosk/tenants/#").value == NOT_AUTHORIZED
            assert shared.subscribe("tenants/+/kiosks/+/requests").value == NOT_AUTHORIZED
            assert shared.subscribe("$share/hub-kiosk/tenants/+/kiosks/+/requests").value == 1
            # ...and each delivery is checked against the topic (publishClientReceive).
            assert not sender.publish("tenants/acme/kiosks/k-1/requests", "{}").is_failure
            msg = shared.wait_for(lambda m: True)
            assert msg.topic == "tenants/acme/kiosks/k-1/requests"
        finally:
            for p in (plain, shared, sender):
                p.close()
    finally:
        admin.close()
