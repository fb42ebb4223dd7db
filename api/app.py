"""The FastAPI application factory."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from api.domain.appointments import Clinic
from api.errors import install_error_handlers
from api.limits import BodySizeLimit
from api.routers import appointments, directory, events, health, patients, realtime
from api.runtime import running
from api.settings import Settings

DEFAULT_WEB_DIST = Path(__file__).resolve().parent.parent / "clients" / "web" / "dist"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    # Fail at start, not at the first request, on a bad token configuration.
    settings.resolved_jwt_secret  # noqa: B018

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
    app.state.clinic = Clinic(settings.clinic_timezone)
    install_error_handlers(app)
    for router in (health, realtime, events, patients, appointments, directory):
        app.include_router(router.router)
    web = settings.web_dist_dir or DEFAULT_WEB_DIST
    if (web / "index.html").exists():
        app.mount("/", StaticFiles(directory=web, html=True), name="web")
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    return app
