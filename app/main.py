"""The FastAPI application: built by `create_app`, wired up in `lifespan`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from app.api import auth, companies, guards, health, incidents, stations, units
from app.api.errors import install_error_handlers
from app.auth.throttle import LoginThrottle
from app.clock import Clock
from app.context import AppContext
from app.db import Database
from app.events.log import EventLog
from app.geo.zones import JurisdictionIndex, parse_jurisdiction
from app.migrate import ensure_sqlite_directory
from app.models import PoliceStation
from app.observability import Metrics, RequestContextMiddleware
from app.realtime.hub import Hub
from app.settings import Settings, get_settings

log = logging.getLogger(__name__)


def build_context(settings: Settings, clock: Clock, metrics: Metrics) -> AppContext:
    ensure_sqlite_directory(settings.database_url)
    hub = Hub()
    hub.on_event(lambda event: metrics.events.labels(event["type"]).inc())
    return AppContext(
        settings=settings,
        db=Database(
            settings.database_url,
            sqlite_synchronous=settings.sqlite_synchronous,
            sqlite_busy_timeout_ms=settings.sqlite_busy_timeout_ms,
        ),
        clock=clock,
        hub=hub,
        events=EventLog(publish=hub.publish_event),
        jurisdictions=JurisdictionIndex(),
        metrics=metrics,
        login_throttle=LoginThrottle(),
    )


async def load_jurisdictions(ctx: AppContext) -> None:
    async with ctx.db.transaction(readonly=True) as session:
        stations = (await session.execute(select(PoliceStation.id, PoliceStation.jurisdiction))).all()
    ctx.jurisdictions.load({sid: parse_jurisdiction(geojson) for sid, geojson in stations})


def create_app(settings: Settings | None = None, clock: Clock | None = None) -> FastAPI:
    """The application for these settings; nothing touches the database until startup."""
    settings = settings or get_settings()
    clock = clock or Clock()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ctx = build_context(settings, clock, metrics)
        app.state.ctx = ctx
        try:
            await load_jurisdictions(ctx)
        except DBAPIError:
            log.error("database not migrated or unreachable; /readyz will say so")
        try:
            yield
        finally:
            await ctx.db.dispose()

    app = FastAPI(
        title="Police–guard linkage dispatch",
        version="0.1.0",
        description="Finds the nearest on-duty security guard, instructs them over a websocket, "
        "and escalates to the police unit responsible for the place.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
        )
    app.add_middleware(RequestContextMiddleware, metrics=metrics)

    api = APIRouter(prefix="/api/v1")
    for module in (auth, companies, guards, stations, units, incidents):
        api.include_router(module.router)
    app.include_router(api)
    app.include_router(health.router)
    return app
