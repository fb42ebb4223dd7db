"""hub.audit with CredentialIssuer as a library: a partner's credentials are audited
with the partner as actor, revocations name the revoker (``by``) or else the hub, and
the rows commit with the change they record."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from hub.audit import list_audit, record_audit
from hub.broker_admin import DynsecAdmin
from hub.broker_tokens import DENY_ALL, AclRule, KeyRing, TokenSigner
from hub.credentials import CredentialIssuer, SessionNotFoundError
from hub.db import make_engine, make_sessionmaker, utcnow
from tests.support.stack import Stack


async def test_partner_credentials_and_revocations_are_audited(stack: Stack) -> None:
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    engine = make_engine(stack.db.url)
    sessions = make_sessionmaker(engine)
    admin = DynsecAdmin(
        host="127.0.0.1",
        port=stack.broker.mqtt_port,
        username="hub-admin",
        password=stack.broker.secrets.admin_password,
    )
    acl = (AclRule("allow", "subscribe", f"tenants/{tenant}/patients/+/claim/+/+"), DENY_ALL)
    try:
        async with admin:
            await admin.wait_connected(10)
            issuer = CredentialIssuer(
                admin=admin,
                signer=TokenSigner(
                    KeyRing(directory=stack.tmp / "data" / "secrets" / "broker-signing"),
                    issuer="ehr-hub",
                ),
                sessions=sessions,
            )
            far = utcnow() + timedelta(days=1)
            client_id = f"{tenant}.partner.lab-1"
            for call in (issuer.issue, issuer.renew):
                await call(
                    tenant=tenant,
                    user_id="lab-1",
                    not_after=far,
                    kind="partner",
                    acl=acl,
                    client_id=client_id,
                )
            assert await issuer.revoke_client_ids(tenant, [client_id]) == 1
            user = await issuer.issue(tenant=tenant, user_id="u-1", not_after=far)
            await issuer.revoke(tenant=tenant, client_id=user.client_id, by=("ad-1", "user"))
            with pytest.raises(SessionNotFoundError):  # refused: nothing recorded
                await issuer.revoke(tenant=tenant, client_id=user.client_id)
    finally:
        with sessions() as session:
            page = list_audit(session, tenant, kinds=["session"])
        engine.dispose()
    assert [(e["kind"], e["actor"], e["actorKind"], e["subject"]) for e in page.entries] == [
        ("session.issued", "lab-1", "partner", client_id),
        ("session.renewed", "lab-1", "partner", client_id),
        ("session.revoked", "hub", "hub", client_id),
        ("session.issued", "u-1", "user", user.client_id),
        ("session.revoked", "ad-1", "user", user.client_id),
    ]
    assert [e["details"]["credentialKind"] for e in page.entries] == ["partner"] * 3 + [
        "session"
    ] * 2


def test_a_rolled_back_change_takes_its_audit_row_with_it(stack: Stack) -> None:
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    engine = make_engine(stack.db.url)
    sessions = make_sessionmaker(engine)
    try:
        with sessions() as session:
            record_audit(session, tenant=tenant, actor="u-1", actor_kind="user", kind="x.y")
            session.rollback()
        with sessions() as session:
            assert list_audit(session, tenant).entries == []
        with pytest.raises(ValueError, match="audit details"), sessions() as session:
            record_audit(
                session,
                tenant=tenant,
                actor="u-1",
                actor_kind="user",
                kind="x.y",
                details={"big": "x" * 4096},
            )
    finally:
        engine.dispose()
