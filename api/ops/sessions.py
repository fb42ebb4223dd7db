"""``hub sessions list`` and ``hub sessions revoke``: the broker credentials the api
issued (browser sessions, kiosks, partners), and revoking them as the api does.

A revocation is committed to the database with its audit row (actor ``operator``),
then sent to the broker over ``$CONTROL/hub-auth/v1`` with the admin account. When
the broker does not confirm it, the api's revocation sync sends it again whenever
its admin connection (re)starts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.ops.common import (
    FAILED,
    OK,
    checked_tenant,
    fail,
    load_settings,
    note,
    open_database,
)
from api.runtime import broker_admin, credential_issuer, key_ring
from api.settings import Settings
from hub.audit import ActorKind
from hub.broker_tokens import TokenSigner
from hub.credentials import BrokerSession
from hub.db import utcnow
from hub.envelope import iso_utc
from hub.errors import BrokerUnavailableError

# Who revoked, as the audit trail names it.
OPERATOR: tuple[str, ActorKind] = ("operator", "hub")
# How long a command waits for the broker's admin login.
BROKER_WAIT_SECONDS = 3.0


def _when(value: datetime | None) -> str | None:
    return iso_utc(value) if value is not None else None


def _row_json(row: BrokerSession) -> dict[str, Any]:
    return {
        "clientId": row.client_id,
        "kind": row.kind,
        "subject": row.user_id,
        "createdAt": _when(row.created_at),
        "expiresAt": _when(row.expires_at),
        "revokedAt": _when(row.revoked_at),
    }


def _sessions(
    session: Session, tenant: str, *, kind: str | None = None, everything: bool = False
) -> list[BrokerSession]:
    query = select(BrokerSession).where(BrokerSession.tenant == tenant)
    if kind is not None:
        query = query.where(BrokerSession.kind == kind)
    if not everything:
        query = query.where(BrokerSession.revoked_at.is_(None), BrokerSession.expires_at > utcnow())
    return list(session.scalars(query.order_by(BrokerSession.created_at, BrokerSession.client_id)))


def _table(rows: list[dict[str, Any]]) -> str:
    columns = [
        ("CLIENT ID", "clientId"),
        ("KIND", "kind"),
        ("SUBJECT", "subject"),
        ("CREATED", "createdAt"),
        ("EXPIRES", "expiresAt"),
        ("REVOKED", "revokedAt"),
    ]
    cells = [[title for title, _ in columns]]
    cells += [[str(r[key] or "-") for _, key in columns] for r in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in cells
    )


def cmd_list(args: argparse.Namespace) -> int:
    engine, sessions = open_database(load_settings(), read_only=True)
    try:
        with sessions() as session:
            tenant = checked_tenant(session, args.tenant)
            found = _sessions(session, tenant, kind=args.kind, everything=args.all)
            rows = [_row_json(r) for r in found]
    finally:
        engine.dispose()
    if args.json:
        for row in rows:
            sys.stdout.write(json.dumps(row, separators=(",", ":")) + "\n")
    else:
        print(_table(rows))
    note("hub sessions list", f"{len(rows)} {'sessions' if args.all else 'live sessions'}")
    return OK


def _require_broker_secrets(settings: Settings) -> None:
    """The admin password and the signing keys are the api's, from its data directory
    or its settings; a command must not generate new ones in a wrong directory."""
    secret = settings.data_dir / "secrets" / "dynsec-admin"
    if settings.broker_admin_password is None and not secret.exists():
        fail(
            "no broker admin password: set HUB_BROKER_ADMIN_PASSWORD "
            f"or the api's HUB_DATA_DIR ({secret} is missing)"
        )
    if settings.broker_signing_key_file is None and not any(
        settings.signing_keys_dir.glob("key-*.pem")
    ):
        fail(f"no signing keys in {settings.signing_keys_dir}: run with the api's HUB_DATA_DIR")


async def _revoke(args: argparse.Namespace, settings: Settings) -> int:
    prog = "hub sessions revoke"
    engine, sessions = open_database(settings)
    try:
        with sessions() as session:
            tenant = checked_tenant(session, args.tenant)
            live = _sessions(session, tenant, kind=args.all_of_kind)
        if args.client_ids:
            by_id = {r.client_id for r in live}
            missing = [c for c in args.client_ids if c not in by_id]
            targets = [c for c in args.client_ids if c in by_id]
        else:
            missing = []
            targets = [r.client_id for r in live if args.user is None or r.user_id == args.user]
        for client_id in missing:
            note(prog, f"no live session {client_id} in tenant {tenant}")
        if not targets:
            note(prog, "nothing to revoke")
            return FAILED
        note(prog, f"revoking {len(targets)} session(s) in tenant {tenant}")
        admin = broker_admin(settings, timeout=BROKER_WAIT_SECONDS)
        signer = TokenSigner(key_ring(settings), issuer=settings.broker_token_issuer)
        issuer = credential_issuer(settings, admin=admin, signer=signer, sessions=sessions)
        async with admin:
            try:
                await admin.wait_connected(BROKER_WAIT_SECONDS)
            except BrokerUnavailableError:
                note(prog, "the broker does not answer; committing the revocation anyway")
            revoked = await issuer.revoke_client_ids(tenant, targets, by=OPERATOR)
            unconfirmed = issuer.resend_pending
    finally:
        engine.dispose()
    note(prog, f"revoked {revoked} session(s)")
    if unconfirmed:
        note(
            prog,
            "the broker did not confirm: it will be told when the api's admin connection "
            "next starts (restart the api, or it does so when the broker comes back)",
        )
        return FAILED
    return FAILED if missing else OK


def cmd_revoke(args: argparse.Namespace) -> int:
    chosen = [bool(args.client_ids), args.user is not None, args.all_of_kind is not None]
    if sum(chosen) != 1:
        fail("give CLIENT_ID..., --user or --all-of-kind (one of them)")
    settings = load_settings()
    _require_broker_secrets(settings)
    return asyncio.run(_revoke(args, settings))
