"""CredentialIssuer used as a library (how kiosk and partner credentials are made):
its own kind, acl, lifetime and stable client id, kept across renewals; revocation of
a device's client ids; forgetting ended sessions."""

from __future__ import annotations

from datetime import timedelta

import pytest

from hub.broker_admin import DynsecAdmin, Revocation
from hub.broker_tokens import DENY_ALL, AclRule, KeyRing, TokenSigner
from hub.credentials import CredentialIssuer, IssuedCredentials, SessionNotFoundError
from hub.db import make_engine, make_sessionmaker, utcnow
from tests.support.mqtt import Probe
from tests.support.stack import Stack


def _admin(stack: Stack) -> DynsecAdmin:
    return DynsecAdmin(
        host="127.0.0.1",
        port=stack.broker.mqtt_port,
        username="hub-admin",
        password=stack.broker.secrets.admin_password,
    )


def _signer(stack: Stack) -> TokenSigner:
    # The api's own keys (same data directory), so the broker knows them.
    return TokenSigner(
        KeyRing(directory=stack.tmp / "data" / "secrets" / "broker-signing"), issuer="ehr-hub"
    )


def _probe(stack: Stack, creds: IssuedCredentials) -> Probe:
    return Probe(
        client_id=creds.client_id,
        username=creds.username,
        password=creds.password,
        port=stack.broker.mqtt_port,
    )


async def test_device_credentials_keep_their_acl_lifetime_and_client_id(stack: Stack) -> None:
    engine = make_engine(stack.db.url)
    admin = _admin(stack)
    kiosk = "tenants/t-lib/kiosks/k-1"
    acl = (
        AclRule("allow", "publish", f"{kiosk}/requests"),
        AclRule("allow", "subscribe", f"{kiosk}/responses"),
        DENY_ALL,
    )
    try:
        async with admin:
            await admin.wait_connected(10)
            issuer = CredentialIssuer(
                admin=admin,
                signer=_signer(stack),
                sessions=make_sessionmaker(engine),
                ttl=timedelta(minutes=5),
            )
            far = utcnow() + timedelta(days=30)
            client_id = "t-lib.kiosk.k-1"
            creds = await issuer.issue(
                tenant="t-lib",
                user_id="k-1",
                not_after=far,
                kind="kiosk",
                acl=acl,
                ttl=timedelta(hours=12),
                client_id=client_id,
            )
            assert creds.client_id == client_id
            assert creds.username == f"kiosk:{client_id}"
            assert creds.expires_at - utcnow() > timedelta(hours=11)
            renewed = await issuer.renew(
                tenant="t-lib",
                user_id="k-1",
                client_id=client_id,
                not_after=far,
                kind="kiosk",
                acl=acl,
            )
            assert renewed.expires_at - utcnow() > timedelta(hours=11)
            assert renewed.client_id == client_id
            probe = _probe(stack, renewed)
            try:
                assert not probe.connect().is_failure
                assert not probe.subscribe(f"{kiosk}/responses").is_failure
                assert probe.subscribe("tenants/t-lib/patients/#").is_failure
                assert probe.subscribe(f"{kiosk}/requests").is_failure  # publish only
                assert await issuer.revoke_client_ids("t-lib", [client_id]) == 1
                assert probe.wait_disconnect().is_failure
            finally:
                probe.close()
            assert _probe(stack, renewed).connect().is_failure
            assert _probe(stack, creds).connect().is_failure
            assert await issuer.revoke_client_ids("t-lib", [client_id]) == 0
    finally:
        engine.dispose()


async def test_ended_sessions_are_forgotten_after_retention(private_stack: Stack) -> None:
    stack = private_stack
    engine = make_engine(stack.db.url)
    admin = _admin(stack)
    try:
        async with admin:
            await admin.wait_connected(10)
            issuer = CredentialIssuer(
                admin=admin, signer=_signer(stack), sessions=make_sessionmaker(engine)
            )
            soon = utcnow() + timedelta(seconds=2)
            far = utcnow() + timedelta(hours=1)
            await issuer.issue(tenant="t-old", user_id="u-1", not_after=soon)
            await issuer.issue(tenant="t-old", user_id="u-2", not_after=far)
            assert await issuer.prune(timedelta(days=1)) == 0  # nothing ended long ago
            assert await issuer.prune(timedelta(hours=-0.5)) == 1  # only the short one
    finally:
        engine.dispose()


async def test_a_stable_client_id_is_issued_again_but_not_after_its_revocation(
    stack: Stack,
) -> None:
    engine = make_engine(stack.db.url)
    admin = _admin(stack)
    acl = (AclRule("allow", "subscribe", "tenants/t-lib/kiosks/k-2/responses"), DENY_ALL)
    try:
        async with admin:
            await admin.wait_connected(10)
            issuer = CredentialIssuer(
                admin=admin, signer=_signer(stack), sessions=make_sessionmaker(engine)
            )
            far = utcnow() + timedelta(days=1)
            common = {"tenant": "t-lib", "not_after": far, "kind": "kiosk", "acl": acl}
            first = await issuer.issue(user_id="k-2", client_id="t-lib.kiosk.k-2", **common)  # type: ignore[arg-type]
            again = await issuer.issue(user_id="k-2", client_id="t-lib.kiosk.k-2", **common)  # type: ignore[arg-type]
            assert again.client_id == first.client_id
            assert again.jti != first.jti
            with pytest.raises(ValueError, match="another identity"):
                await issuer.issue(user_id="k-3", client_id="t-lib.kiosk.k-2", **common)  # type: ignore[arg-type]
            await issuer.revoke_client_ids("t-lib", ["t-lib.kiosk.k-2"])
            with pytest.raises(SessionNotFoundError):
                await issuer.issue(user_id="k-2", client_id="t-lib.kiosk.k-2", **common)  # type: ignore[arg-type]
    finally:
        engine.dispose()


async def test_a_thousand_revocations_reach_the_broker_in_bounded_messages(
    private_stack: Stack,
) -> None:
    """A re-send after a broker restart carries every live revocation; the plugin
    refuses control messages over 64 KiB, so they go in several."""
    admin = _admin(private_stack)
    until = int((utcnow() + timedelta(hours=1)).timestamp())
    revocations = [Revocation(f"tenant-{i % 7}.user-{i:05d}.{i:08x}", until) for i in range(1000)]
    async with admin:
        await admin.wait_connected(10)
        await admin.revoke_tokens(revocations)
        listed = {r["clientid"] for r in await admin.list_revocations()}
    assert {r.client_id for r in revocations} <= listed
