"""CredentialIssuer used as a library (how kiosk and partner credentials will be
made): its own roles and lifetime, kept across renewals; a global bound."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest

from hub.broker_admin import Acl, DynsecAdmin, Role
from hub.credentials import CapacityError, CredentialIssuer, IssuedCredentials
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


def _probe(stack: Stack, creds: IssuedCredentials) -> Probe:
    return Probe(
        client_id=creds.client_id,
        username=creds.username,
        password=creds.password,
        port=stack.broker.mqtt_port,
    )


async def test_device_credentials_keep_their_roles_and_lifetime(stack: Stack) -> None:
    engine = make_engine(stack.db.url)
    admin = _admin(stack)
    kiosk_role = Role(
        "kiosk.t-lib.k-1",
        (
            Acl("publishClientSend", "tenants/t-lib/kiosks/k-1/#"),
            Acl("subscribePattern", "tenants/t-lib/kiosks/k-1/#"),
            Acl("publishClientReceive", "tenants/t-lib/kiosks/k-1/#"),
        ),
    )
    try:
        async with (
            admin,
            CredentialIssuer(
                admin=admin,
                sessions=make_sessionmaker(engine),
                ttl=timedelta(minutes=5),
                reap_interval=3600,
                max_live_sessions=10_000,
            ) as issuer,
        ):
            await admin.wait_connected(10)
            far = utcnow() + timedelta(days=30)
            creds = await issuer.issue(
                tenant="t-lib",
                user_id="k-1",
                not_after=far,
                roles=[kiosk_role],
                ttl=timedelta(days=7),
            )
            assert creds.expires_at - utcnow() > timedelta(days=6)
            renewed = await issuer.renew(
                tenant="t-lib", user_id="k-1", client_id=creds.client_id, not_after=far
            )
            assert renewed.expires_at - utcnow() > timedelta(days=6)
            assert renewed.client_id == creds.client_id
            probe = _probe(stack, renewed)
            try:
                assert not probe.connect().is_failure
                assert not probe.subscribe("tenants/t-lib/kiosks/k-1/#").is_failure
                assert probe.subscribe("tenants/t-lib/patients/#").is_failure
            finally:
                probe.close()
            await issuer.revoke(tenant="t-lib", client_id=creds.client_id)
    finally:
        engine.dispose()


async def test_live_sessions_are_bounded_in_all(private_stack: Stack) -> None:
    stack = private_stack  # an empty database: no other live sessions count
    engine = make_engine(stack.db.url)
    admin = _admin(stack)
    try:
        async with admin:
            await admin.wait_connected(10)
            bounded = CredentialIssuer(
                admin=admin, sessions=make_sessionmaker(engine), max_live_sessions=1
            )
            far = utcnow() + timedelta(hours=1)
            first = await bounded.issue(tenant="t-cap", user_id="u-1", not_after=far)
            with pytest.raises(CapacityError):
                await bounded.issue(tenant="t-cap", user_id="u-2", not_after=far)
            await bounded.revoke(tenant="t-cap", client_id=first.client_id)
            await bounded.issue(tenant="t-cap", user_id="u-2", not_after=far)
    finally:
        engine.dispose()


async def test_ended_sessions_are_forgotten_after_retention(private_stack: Stack) -> None:
    stack = private_stack
    engine = make_engine(stack.db.url)
    admin = _admin(stack)
    try:
        async with admin:
            await admin.wait_connected(10)
            issuer = CredentialIssuer(admin=admin, sessions=make_sessionmaker(engine))
            far = utcnow() + timedelta(hours=1)
            ended = await issuer.issue(tenant="t-old", user_id="u-1", not_after=far)
            await issuer.revoke(tenant="t-old", client_id=ended.client_id)
            await issuer.issue(tenant="t-old", user_id="u-2", not_after=far)
            assert await issuer.prune(timedelta(days=1)) == 0  # ended just now: kept
            assert await issuer.prune(timedelta(seconds=-1)) == 1  # only the ended one
    finally:
        engine.dispose()


class _DeletesRoleLate(DynsecAdmin):
    """Injects the interleaving of two api processes: ``meanwhile`` runs after this
    process decided a user's role can go and before it deletes it."""

    meanwhile: Callable[[], Awaitable[object]] | None = None

    async def delete_role(self, name: str) -> None:
        hook, self.meanwhile = self.meanwhile, None
        if hook is not None:
            await hook()
        await super().delete_role(name)


async def test_a_session_issued_while_another_process_deletes_its_role_keeps_it(
    stack: Stack,
) -> None:
    engine = make_engine(stack.db.url)
    remover = _DeletesRoleLate(
        host="127.0.0.1",
        port=stack.broker.mqtt_port,
        username="hub-admin",
        password=stack.broker.secrets.admin_password,
    )
    other = _admin(stack)
    try:
        async with remover, other:
            await remover.wait_connected(10)
            await other.wait_connected(10)
            sessions = make_sessionmaker(engine)
            a = CredentialIssuer(admin=remover, sessions=sessions)
            b = CredentialIssuer(admin=other, sessions=sessions)
            far = utcnow() + timedelta(hours=1)
            old = await a.issue(tenant="t-race", user_id="u-1", not_after=far)
            issued: list[IssuedCredentials] = []

            async def issue_in_b() -> None:
                issued.append(await b.issue(tenant="t-race", user_id="u-1", not_after=far))

            # Process A removes the user's last session; process B issues a new one
            # after A found none left and before A deletes the user's role.
            remover.meanwhile = issue_in_b
            await a.revoke(tenant="t-race", client_id=old.client_id)
            (new,) = issued
            (reply,) = await other.execute([{"command": "getClient", "username": new.username}])
            roles = {r["rolename"] for r in reply["data"]["client"]["roles"]}
            assert "user.t-race.u-1" in roles, roles
            probe = _probe(stack, new)
            try:
                assert not probe.connect().is_failure
                assert not probe.subscribe("tenants/t-race/users/u-1/#").is_failure
            finally:
                probe.close()
            await b.revoke(tenant="t-race", client_id=new.client_id)
    finally:
        engine.dispose()
