"""The FastAPI application: built by `create_app`, wired up in `lifespan`."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi_offline import FastAPIOffline
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from app import housekeeping
from app.api import (
    alarms,
    audit,
    auth,
    broadcasts,
    companies,
    guards,
    health,
    incidents,
    intel,
    police,
    reports,
    stations,
    supervision,
    tiers,
    units,
    webhooks,
)
from app.api.errors import install_error_handlers
from app.api.headers import SecurityHeaders
from app.api.limits import BodyLimit
from app.api.openapi import install_openapi
from app.audit.log import AuditLog
from app.auth.cache import PrincipalCache
from app.auth.throttle import LoginThrottle
from app.broadcasts.board import BroadcastBoard
from app.clock import Clock
from app.cluster import frames, replica
from app.cluster.peers import Peers
from app.cluster.relay import Relay
from app.cluster.replica import new_replica_id
from app.console.routes import install_console
from app.context import AppContext
from app.db import Database, pg_dsn
from app.dispatch import availability, escalation, offers, roster
from app.dispatch.engine import OFFER_EXPIRY
from app.dispatch.timers import Scheduler
from app.events.feed import EventFeed
from app.events.log import EventLog
from app.geo.live_index import LiveIndex
from app.geo.zones import JurisdictionIndex, parse_jurisdiction
from app.integrations.delivery import WebhookSender
from app.integrations.webhooks import WebhookOutbox
from app.migrate import ensure_sqlite_directory
from app.models import PoliceStation
from app.observability import Metrics, RequestContextMiddleware
from app.realtime import events_ws, guard_ws, positions_ws
from app.realtime.close_codes import CloseCode
from app.realtime.hub import Hub
from app.realtime.positions import PositionWriter
from app.realtime.positions_feed import PositionsFeed
from app.settings import Settings, get_settings
from app.supervision import expiry
from app.supervision.ledger import PointsLedger

log = logging.getLogger(__name__)


def build_context(settings: Settings, clock: Clock, metrics: Metrics) -> AppContext:
    ensure_sqlite_directory(settings.database_url)
    hub = Hub()
    hub.on_event(lambda event: metrics.events.labels(event["type"]).inc())
    db = Database(
        settings.database_url,
        sqlite_synchronous=settings.sqlite_synchronous,
        sqlite_busy_timeout_ms=settings.sqlite_busy_timeout_ms,
        connect_timeout_s=settings.db_connect_timeout_s,
        statement_timeout_s=settings.db_statement_timeout_s,
        pool_timeout_s=settings.db_pool_timeout_s,
        retry_after_s=settings.db_retry_after_s,
    )
    feed = EventFeed(db, hub, metrics)
    ctx = AppContext(
        settings=settings,
        db=db,
        clock=clock,
        hub=hub,
        feed=feed,
        events=EventLog(committed=feed.committed),
        jurisdictions=JurisdictionIndex(),
        live=LiveIndex(cell_m=settings.index_cell_m, freshness_s=settings.position_freshness_s),
        metrics=metrics,
        login_throttle=LoginThrottle(
            per_username=settings.login_failures_per_username,
            per_address=settings.login_failures_per_address,
            window_s=settings.login_throttle_window_s,
        ),
        principals=PrincipalCache(settings.auth_cache_s),
    )
    metrics.indexed_guards.set_function(lambda: len(ctx.live))
    ctx.webhooks = WebhookSender(ctx)
    ctx.events.outbox_writers.append(WebhookOutbox(ctx))
    ctx.audit = AuditLog(ctx)
    ctx.events.outbox_writers.append(ctx.audit.mirror)  # user, key and token events
    ctx.events.outbox_writers.append(PointsLedger(settings.points))
    ctx.positions = PositionWriter(ctx)
    ctx.positions_feed = PositionsFeed(ctx)
    ctx.availability = availability.AvailabilityWatch(ctx)
    ctx.broadcasts = BroadcastBoard(ctx)
    ctx.scheduler = Scheduler(
        ctx,
        {
            OFFER_EXPIRY: offers.expire,
            escalation.ON_SCENE_DEADLINE: escalation.on_scene_deadline,
            availability.GUARD_LOST: availability.guard_lost,
        },
    )
    ctx.replica_id = new_replica_id(settings.replica_id)
    if not db.is_sqlite:
        join_replicas(ctx)
    return ctx


def join_replicas(ctx: AppContext) -> None:
    """PostgreSQL: learn what the other replicas commit (app/cluster/)."""
    relay = ctx.relay = Relay(
        pg_dsn(ctx.settings.database_url),
        ctx.replica_id,
        ctx.metrics,
        connect_timeout_s=ctx.settings.db_connect_timeout_s,
    )
    peers = ctx.peers = Peers(ctx, ctx.replica_id)
    ctx.hub.elsewhere = frames.forward_to(relay)
    ctx.feed.local_listeners.append(relay.events_committed)
    ctx.feed.remote_listeners.append(peers.remote_event)
    relay.handlers["e"] = lambda _items: ctx.feed.wake()
    relay.handlers[frames.KIND] = partial(frames.heard, ctx)
    relay.resync.append(ctx.feed.wake)


async def replica_tasks(ctx: AppContext) -> list[asyncio.Task[None]]:
    """The background work of one replica among several (PostgreSQL)."""
    if ctx.relay is None or ctx.peers is None:
        return []
    sweep_now = asyncio.Event()
    ctx.relay.resync.append(sweep_now.set)
    return [
        asyncio.create_task(ctx.feed.run(), name="event-feed"),
        asyncio.create_task(ctx.relay.run(), name="relay"),
        asyncio.create_task(ctx.peers.run(), name="peers"),
        asyncio.create_task(frames.sweep_loop(ctx, sweep_now), name="frame-sweep"),
    ]


async def load_jurisdictions(ctx: AppContext) -> None:
    async with ctx.db.transaction(readonly=True) as session:
        stations = (
            await session.execute(select(PoliceStation.id, PoliceStation.jurisdiction))
        ).all()
    ctx.jurisdictions.load({sid: parse_jurisdiction(geojson) for sid, geojson in stations})


def server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn options that belong to the service (CLI and tests use the same)."""
    return {
        # Frames up to the app's limit get an `error` frame; far larger ones (4×) make
        # the protocol close that one connection with 1009 (CloseCode.TOO_BIG) before we
        # buffer them.
        "ws_max_size": 4 * settings.ws_max_frame_bytes,
        "ws_ping_interval": settings.ws_ping_interval_s,
        "ws_ping_timeout": settings.ws_ping_interval_s,
        # Frames are small JSON: compressing them saves a few bytes and costs each idle
        # connection ~40 KiB of zlib state, and CPU on every frame.
        "ws_per_message_deflate": False,
        # X-Forwarded-For / -Proto are believed from DISPATCH_TRUSTED_PROXIES only (not
        # uvicorn's default of 127.0.0.1), the same rule as app/auth/address.py.
        "proxy_headers": bool(settings.trusted_proxies),
        "forwarded_allow_ips": list(settings.trusted_proxies),
    }


def _report_if_died(task: asyncio.Task[Any]) -> None:
    """Background loops run for the process's life: one that ends early is a bug to see."""
    if not task.cancelled() and task.exception() is not None:
        log.error("background task %s died", task.get_name(), exc_info=task.exception())


def _settle_garbage_collector() -> None:
    """Keep the cyclic collector off the dispatch path. What startup built (modules, ORM
    and schema metadata) lives forever: freeze it out of every collection. A collection
    walks every young object, and each connected guard keeps a few suspended coroutines
    young, so with thousands connected one costs tens of milliseconds whatever the
    threshold: collect seldom (every 50,000 net allocations, not 700)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


def create_app(settings: Settings | None = None, clock: Clock | None = None) -> FastAPI:
    """The application for these settings; nothing touches the database until startup."""
    settings = settings or get_settings()
    clock = clock or Clock()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        sqlite_claim = replica.claim_sqlite_file(settings.database_url)
        ctx = build_context(settings, clock, metrics)
        app.state.ctx = ctx
        try:
            await ctx.feed.start()
            await load_jurisdictions(ctx)
            log.info("live index rebuilt with %d on-duty guards", await roster.rebuild(ctx))
            log.info("%d unstaffed incidents to offer again", await ctx.availability.load())
            log.info("%d broadcasts still active", await ctx.broadcasts.load())
        except (DBAPIError, OSError):  # a refused connection is a plain OSError
            log.error("database not migrated or unreachable; /readyz will say so")
        _settle_garbage_collector()
        unwatch_gc = metrics.watch_garbage_collector()
        tasks = [
            asyncio.create_task(ctx.scheduler.run(), name="scheduler"),
            asyncio.create_task(ctx.positions.run(), name="position-writer"),
            asyncio.create_task(housekeeping.idle_loop(ctx), name="idle-sweep"),
            asyncio.create_task(housekeeping.prune_loop(ctx), name="prune"),
            asyncio.create_task(housekeeping.audit_loop(ctx), name="audit"),
            asyncio.create_task(expiry.check_loop(ctx), name="expiry-check"),
            asyncio.create_task(ctx.webhooks.run(), name="webhooks"),
            asyncio.create_task(ctx.availability.run(), name="restaffing"),
            *await replica_tasks(ctx),
        ]
        for task in tasks:
            task.add_done_callback(_report_if_died)
        try:
            yield
        finally:
            unwatch_gc()
            for link in ctx.hub.guard_links():
                link.close(CloseCode.SHUTDOWN, "server shutting down")
            await ctx.positions_feed.stop()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            try:
                await ctx.positions.flush()
                if ctx.peers is not None:
                    await ctx.peers.leave()
            except Exception:
                log.exception("final position flush failed")
            await ctx.db.dispose()
            replica.release_sqlite_file(sqlite_claim)

    # Swagger UI and ReDoc from the package, not a CDN: /docs works with no internet.
    app = FastAPIOffline(
        title="Police–guard linkage dispatch",
        version="0.1.0",
        description="Finds the nearest on-duty security guard, instructs them over a websocket, "
        "and escalates to the police unit responsible for the place.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    # Outermost last: headers on every answer (the 413 too), then request id and metrics,
    # CORS, and the body cap in front of parsing and authentication.
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
        )
    app.add_middleware(RequestContextMiddleware, metrics=metrics)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(guard_ws.GuardSocketRoute)  # last added: the outermost of ours

    api = APIRouter(prefix="/api/v1")
    for module in (
        auth,
        companies,
        guards,
        stations,
        units,
        incidents,
        police,
        webhooks,
        audit,
        tiers,
        intel,
        broadcasts,
        alarms,
        reports,
        supervision,
    ):
        api.include_router(module.router)
    app.include_router(api)
    app.include_router(events_ws.router)
    app.include_router(positions_ws.router)
    app.include_router(health.router)
    install_console(app)
    install_openapi(app)
    return app
