"""The api's side of the audit trail (contract, section 12): replays, which read in a
read-only session and are recorded in a short write transaction of their own, and
what ``GET /audit`` accepts. The rows themselves are ``hub.audit``'s."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from hub.audit import ActorKind, record_audit

# A kind ("kiosk.checkin") or every kind of a subject ("kiosk").
_KIND = re.compile(r"[a-z][a-z_]{0,30}(\.[a-z][a-z_]{0,30})?")
MAX_KINDS = 20


def parse_kinds(text: str | None) -> list[str]:
    """The kinds of a ``kind=`` filter, a comma list; ValueError naming a bad one."""
    if text is None:
        return []
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    if not kinds:
        raise ValueError("kind: give one or more kinds, comma-separated")
    if len(kinds) > MAX_KINDS:
        raise ValueError(f"kind: at most {MAX_KINDS} kinds")
    bad = [k for k in kinds if not _KIND.fullmatch(k)]
    if bad:
        raise ValueError(
            f"kind: {', '.join(repr(k) for k in bad)} is not a kind such as "
            "'session.issued' or a subject such as 'session'"
        )
    return kinds


def audit_replay(
    sessions: sessionmaker[Session],
    *,
    tenant: str,
    actor: str,
    actor_kind: ActorKind = "user",
    after: int,
    types: Sequence[str] | None,
    patient_filtered: bool,
    events: Sequence[dict[str, Any]],
    read: Session | None = None,
) -> None:
    """Record one replay page that is about to be answered: who asked, what for, and
    which seqs it got. Its own small write transaction (the page was read in a
    read-only one); a failure here fails the request, so no page goes unrecorded.
    ``read``, the request's read session, ends its transaction first: its connection
    goes back to the pool before this one is taken, so a request never holds two (the
    pool has one per thread). Blocking: call it from a thread."""
    if read is not None:
        read.rollback()
    seqs = [int(e["seq"]) for e in events]
    with sessions.begin() as session:
        record_audit(
            session,
            tenant=tenant,
            actor=actor,
            actor_kind=actor_kind,
            kind="events.replayed",
            details={
                "after": after,
                "types": list(types) if types else None,
                "patientFiltered": patient_filtered,
                "count": len(seqs),
                "firstSeq": seqs[0] if seqs else None,
                "lastSeq": seqs[-1] if seqs else None,
            },
        )
