"""The running service's parts, built once in `lifespan` and handed to services explicitly."""

from __future__ import annotations

from dataclasses import dataclass

from app.auth.throttle import LoginThrottle
from app.clock import Clock
from app.db import Database
from app.events.log import EventLog
from app.geo.zones import JurisdictionIndex
from app.observability import Metrics
from app.realtime.hub import Hub
from app.settings import Settings


@dataclass
class AppContext:
    settings: Settings
    db: Database
    clock: Clock
    hub: Hub
    events: EventLog
    jurisdictions: JurisdictionIndex
    metrics: Metrics
    login_throttle: LoginThrottle
