"""The running service's parts, built once in `lifespan` and handed to services explicitly."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from app.auth.cache import PrincipalCache
from app.auth.throttle import LoginThrottle
from app.clock import Clock
from app.db import Database
from app.events.feed import EventFeed
from app.events.log import EventLog
from app.geo.live_index import LiveIndex
from app.geo.zones import JurisdictionIndex
from app.observability import Metrics
from app.realtime.hub import Hub
from app.settings import Settings

if TYPE_CHECKING:
    from app.audit.log import AuditLog
    from app.broadcasts.board import BroadcastBoard
    from app.cluster.peers import Peers
    from app.cluster.relay import Relay
    from app.dispatch.availability import AvailabilityWatch
    from app.dispatch.timers import Scheduler
    from app.integrations.delivery import WebhookSender
    from app.realtime.positions import PositionWriter
    from app.realtime.positions_feed import PositionsFeed


@dataclass
class AppContext:
    settings: Settings
    db: Database
    clock: Clock
    hub: Hub
    feed: EventFeed
    events: EventLog
    jurisdictions: JurisdictionIndex
    live: LiveIndex
    metrics: Metrics
    login_throttle: LoginThrottle
    principals: PrincipalCache
    # Built right after the context, because they need it.
    scheduler: Scheduler = field(init=False)
    availability: AvailabilityWatch = field(init=False)
    positions: PositionWriter = field(init=False)
    webhooks: WebhookSender = field(init=False)
    positions_feed: PositionsFeed = field(init=False)
    audit: AuditLog = field(init=False)
    broadcasts: BroadcastBoard = field(init=False)
    # Replicas (PostgreSQL only; None on SQLite, which is one process).
    replica_id: str = field(init=False)
    peers: Peers | None = field(init=False, default=None)
    relay: Relay | None = field(init=False, default=None)
