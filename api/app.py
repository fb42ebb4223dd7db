"""The FastAPI application factory."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from api import fastpath
from api.domain.appointments import Clinic
from api.errors import install_error_handlers
from api.fastpath import PublishFastPath
from api.limits import BodySizeLimit
from api.logs import configure_logging
from api.observe import RequestObserver
from api.rate_limits import RateLimits, WriteLimit
from api.routers import (
    alert_rules,
    appointments,
    audit,
    biopsies,
    claims,
    dev,
    directory,
    encounters,
    events,
    health,
    kiosks,
    metrics,
    notifications,
    partners,
    patients,
    payments,
    prior_auths,
    realtime,
)
from api.runtime import running
from api.settings import Settings

# The demo app (clients/web), built by scripts/up and scripts/test with `vite build`.
DEFAULT_WEB_DIST = Path(__file__).resolve().parent.parent / "clients" / "web" / "dist"


class _NoQueryStrings(logging.Filter):
    """Access log lines keep the path but not the query (``?q=<name>`` is PHI)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], args[2].split("?", 1)[0], *args[3:])
        return True


def _redact_access_log() -> None:
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, _NoQueryStrings) for f in access.filters):
        access.addFilter(_NoQueryStrings())


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    # Fail at start, not at the first request, on a bad token configuration.
    settings.resolved_jwt_secret  # noqa: B018
    configure_logging(settings.resolved_log_format)
    _redact_access_log()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with running(settings) as runtime:
            app.state.runtime = runtime
            yield

    app = FastAPI(
        title="EHR notification hub",
        version="0.1.0",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.clinic = Clinic(settings.clinic_timezone)
    app.state.rate_limits = RateLimits(settings)
    install_error_handlers(app)
    for router in (health, metrics, realtime, events, kiosks, partners, audit):
        app.include_router(router.router)
    # The domain routes: each POST, PUT, PATCH or DELETE counts as one write.
    for router in (
        alert_rules,
        notifications,
        patients,
        appointments,
        encounters,
        biopsies,
        claims,
        payments,
        prior_auths,
        directory,
    ):
        app.include_router(router.router, dependencies=[WriteLimit])
    if settings.development:
        app.include_router(dev.router)
    web = settings.web_dist_dir or DEFAULT_WEB_DIST
    if (web / "index.html").exists():
        index = web / "index.html"
        # The lobby kiosk's screen: the same single-page app, at its own path.
        app.add_api_route("/kiosk", lambda: FileResponse(index), include_in_schema=False)
        app.mount("/", StaticFiles(directory=web, html=True), name="web")
    # Starlette runs the last added outermost: the size limit wraps the fast path, and
    # the request observer (metrics, request id, log line) wraps everything.
    app.add_middleware(PublishFastPath)
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.max_body_bytes,
        per_path={"/events/batch": settings.max_batch_body_bytes},
    )
    app.add_middleware(RequestObserver, fixed_routes=fastpath.ROUTE_PATHS)
    return app
