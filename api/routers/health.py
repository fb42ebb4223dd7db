from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from api.deps import RuntimeDep
from hub.db import utcnow
from hub.envelope import iso_utc
from hub.outbox import outbox_stats

router = APIRouter(tags=["health"])

# Readiness fails when the oldest unpublished event waited longer than this.
MAX_RELAY_LAG_SECONDS = 30.0
# A standby is not to blame for lag, up to this: past it the active relay is alive but
# stuck (it keeps its lock), and every process says so, so monitoring sees it.
STUCK_RELAY_LAG_SECONDS = 120.0


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
def readyz(runtime: RuntimeDep) -> JSONResponse:
    checks: dict[str, Any] = {}
    ok = True
    relay = runtime.relay.status
    try:
        with runtime.read_sessions() as session:
            session.execute(text("SELECT 1"))
            stats = outbox_stats(session)
        lag = _age(stats.oldest_unpublished_at)
        # Lag is the active relay's to answer for: a standby cannot publish, and
        # taking it out of the load balancer would not help, unless nobody publishes.
        lag_ok = lag <= MAX_RELAY_LAG_SECONDS or (
            relay.role == "standby" and lag <= STUCK_RELAY_LAG_SECONDS
        )
        checks["database"] = {"ok": True}
        checks["relayLag"] = {
            "ok": lag_ok,
            "unpublished": stats.unpublished,
            "oldestUnpublishedSeconds": round(lag, 3),
        }
        ok = ok and lag_ok
    except Exception as exc:  # any database failure means not ready
        checks["database"] = {"ok": False, "error": type(exc).__name__}
        ok = False
    # Active or standby, a relay is healthy when it is connected and can take part
    # in choosing the active one.
    checks["relay"] = {
        "ok": relay.leadership_error is None,
        "role": relay.role,
        "leadershipError": relay.leadership_error,
        "connectedSince": iso_utc(relay.connected_since) if relay.connected_since else None,
    }
    ok = ok and relay.leadership_error is None
    broker_ok = relay.connected and runtime.admin.connected and runtime.broker_ready.is_set()
    checks["broker"] = {
        "ok": broker_ok,
        "relayConnected": relay.connected,
        "adminConnected": runtime.admin.connected,
        "lastError": relay.last_error,
    }
    ok = ok and broker_ok
    # A full queue answers 503 per request; it does not take the whole process out of
    # a load balancer (all of them would go at once under a burst). A writer thread
    # that died does.
    writer = runtime.writer
    checks["writer"] = {
        "ok": writer.alive,
        "pending": writer.pending,
        "maxPending": writer.max_pending,
        "writing": writer.writing,
    }
    ok = ok and writer.alive
    return JSONResponse({"ready": ok, "checks": checks}, status_code=200 if ok else 503)


def _age(moment: datetime | None) -> float:
    return 0.0 if moment is None else max(0.0, (utcnow() - moment).total_seconds())
