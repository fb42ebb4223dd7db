"""``GET /metrics``: this process's Prometheus metrics (docs/operations.md).

Readable with an admin's token, or with the scraper's ``HUB_METRICS_TOKEN``
(compared in constant time). Nothing in it names a tenant, a user or a patient.
"""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from api.deps import RuntimeDep, principal_from_header
from api.domain.notifications import pending_counts
from api.errors import Forbidden
from api.runtime import Runtime
from hub import metrics
from hub.db import utcnow
from hub.outbox import outbox_stats

router = APIRouter(tags=["operations"])


@router.get("/metrics", response_class=Response)
async def read_metrics(request: Request, runtime: RuntimeDep) -> Response:
    authorization = request.headers.get("authorization", "")
    if not _scraper(runtime, authorization):
        user = await principal_from_header(runtime, authorization)  # 401 without one
        if not user.has_any("admin"):
            raise Forbidden("requires the admin role or the metrics token")
    body = await run_in_threadpool(_render, runtime)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def _scraper(runtime: Runtime, authorization: str) -> bool:
    expected = runtime.settings.metrics_token
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if not expected or scheme.lower() != "bearer" or not token:
        return False
    return hmac.compare_digest(token.encode(), expected.encode())


def _render(runtime: Runtime) -> bytes:
    """The gauges read at scrape time (two bounded queries), then the registry."""
    with runtime.read_sessions() as session:
        stats = outbox_stats(session)
        pending, escalated = pending_counts(session)
    oldest = stats.oldest_unpublished_at
    metrics.outbox_backlog.set(stats.unpublished)
    metrics.outbox_oldest_age.set(
        max(0.0, (utcnow() - oldest).total_seconds()) if oldest is not None else 0.0
    )
    metrics.notifications_pending.set(pending)
    metrics.notifications_escalated.set(escalated)
    metrics.relay_active.set(1 if runtime.relay.leading else 0)
    metrics.writer_pending.set(runtime.writer.pending)
    return generate_latest(metrics.REGISTRY)
