"""Supervision reports over a million events: generate 90 days of dispatch, time each report.

    .venv/bin/python -m bench.reports [--db sqlite|postgres] [--database-url URL]
        [--events 1000000] [--keep] [--generate-only] [--reuse URL]

Generation: a freshly migrated database (`app.migrate`) gets 20 companies, 5,000 guards,
30 police stations tiling the 40 km box around Tianjin, and 90 local days of incidents
ending yesterday, each with the rows the service would have left: offers in waves (1-6,
accepted / declined / expired / withdrawn), assignments (en_route -> on_scene -> cleared),
escalations (acknowledged, police on scene, handed over), resolved/closed/cancelled times,
about 3 % drills, recognition points and supervisors' feedback, and the events those
state changes write, in time order, sealed into the hash chain as the service's sealer
would have done. Guards' duty changes top the events table up to exactly --events rows.
Rows go in with SQLAlchemy Core executemany, in large batches. A seeded random.Random
makes the data the same on every run.

Timing: the service runs as its own process (`python -m app serve`) on that database;
each report is fetched over HTTP as an admin for the full 90 days: once cold (its first
request after the server started), then three more times (the median). Goal (issue 12):
<= 2 s on PostgreSQL, <= 5 s on SQLite.

`--keep` leaves the generated database (its URL is printed); `--reuse URL` skips the
generation and times the reports on a database kept before.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import heapq
import math
import os
import random
import statistics
import tempfile
import time
import uuid
import zoneinfo
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import asyncpg
import httpx
from sqlalchemy import Table, event, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from app import migrate
from app.audit.chain import EVENTS, GENESIS, link
from app.dispatch.policy import tiers_for
from app.models import (
    Assignment,
    ChainHead,
    Escalation,
    Event,
    Feedback,
    Guard,
    Incident,
    Offer,
    PointAward,
    PoliceStation,
    SecurityCompany,
)
from app.supervision.points import DEFAULT_POINTS, REASONS
from bench.common import (
    ADMIN_PASSWORD,
    ADMIN_USER,
    CENTER,
    HALF_BOX_M,
    PG_URL,
    Server,
    admin_client,
    machine_line,
    offset,
    pg_dsn,
)

UTC = dt.UTC
DAYS = 90
COMPANIES = 20
GUARDS = 5_000
STATION_COLS, STATION_ROWS = 6, 5  # 30 stations tiling the box
BATCH = 20_000  # rows per executemany
FLUSH_EVENTS = 100_000  # events buffered before a flush
MAX_PER_INCIDENT = 80  # more than one incident can write
RUNS = 3  # timed runs after the cold one
GOAL_S = {"postgresql": 2.0, "sqlite": 5.0}

CATEGORIES = {
    "theft": 22,
    "disturbance": 16,
    "suspicious": 14,
    "alarm": 14,
    "medical": 9,
    "assault": 6,
    "traffic": 7,
    "robbery": 3,
    "fire": 2,
    "missing_person": 2,
    "other": 5,
}
PRIORITIES = {1: 8, 2: 30, 3: 42, 4: 20}
OFFER_TIMEOUT_S = {1: 15, 2: 20, 3: 30, 4: 60}  # app/dispatch/policy.py defaults
REQUIRED = {1: (2, 3), 2: (1, 2), 3: (1, 1), 4: (1, 1)}
ESCALATE = {1: 0.9, 2: 0.3, 3: 0.1, 4: 0.03}  # beyond an unstaffed incident's
# Incidents per local hour of day, relative (quiet before dawn, busiest in the evening).
HOURLY = [3, 2, 2, 1, 1, 2, 4, 6, 8, 8, 8, 9, 9, 9, 9, 9, 10, 11, 12, 12, 11, 9, 7, 5]
POINTS = DEFAULT_POINTS
OPERATOR = "user:usr_benchoperator0000000000000"
SUPERVISOR = "user:usr_benchsupervisor000000000000"
SOURCE_ACTORS = {
    "console": OPERATOR,
    "police": "api_key:key_benchpolice00000000000000",
    "alarm": "api_key:key_benchalarm000000000000000",
}
DISPATCH = "system:dispatch"
_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def table(model: Any) -> Table:
    return cast(Table, model.__table__)


# Ids ------------------------------------------------------------------------------------


def ulid(prefix: str, at: dt.datetime, rng: random.Random) -> str:
    """The service's id shape (app/ids.py) for something made at `at`: time-ordered."""
    value = (int(at.timestamp() * 1000) << 80) | rng.getrandbits(80)
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return f"{prefix}_{''.join(reversed(chars))}"


# The world ------------------------------------------------------------------------------


@dataclass
class GuardRow:
    id: str
    company: int
    cell: int
    created_at: dt.datetime
    until: dt.datetime | None  # left or suspended from then on
    accept_p: float  # how often this guard takes an offer
    speed: float  # travel-time factor (< 1: quicker than the estimate)
    lat: float
    lon: float


@dataclass
class World:
    tz: zoneinfo.ZoneInfo
    first: dt.date
    last: dt.date
    start: dt.datetime  # local midnight of `first`, in UTC
    end: dt.datetime  # local midnight after `last`, in UTC
    company_ids: list[str]
    station_ids: list[str]
    guards: list[GuardRow]
    by_cell: list[list[GuardRow]]


def local_midnight(day: dt.date, tz: zoneinfo.ZoneInfo) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tz).astimezone(UTC)


def cell_of(lat: float, lon: float) -> int | None:
    """The station grid cell a point is in (None: outside every jurisdiction)."""
    lat0, lon0 = offset(*CENTER, -HALF_BOX_M, -HALF_BOX_M)
    lat1, lon1 = offset(*CENTER, HALF_BOX_M, HALF_BOX_M)
    if not (lat0 <= lat < lat1 and lon0 <= lon < lon1):
        return None
    col = int((lon - lon0) / (lon1 - lon0) * STATION_COLS)
    row = int((lat - lat0) / (lat1 - lat0) * STATION_ROWS)
    return row * STATION_COLS + col


def jurisdiction(cell: int) -> dict[str, Any]:
    lat0, lon0 = offset(*CENTER, -HALF_BOX_M, -HALF_BOX_M)
    lat1, lon1 = offset(*CENTER, HALF_BOX_M, HALF_BOX_M)
    row, col = divmod(cell, STATION_COLS)
    s = lat0 + (lat1 - lat0) * row / STATION_ROWS
    n = lat0 + (lat1 - lat0) * (row + 1) / STATION_ROWS
    w = lon0 + (lon1 - lon0) * col / STATION_COLS
    e = lon0 + (lon1 - lon0) * (col + 1) / STATION_COLS
    ring = [[w, s], [e, s], [e, n], [w, n], [w, s]]  # counter-clockwise, closed
    return {"type": "Polygon", "coordinates": [[[round(x, 6), round(y, 6)] for x, y in ring]]}


def weighted(rng: random.Random, weights: dict[Any, int]) -> Any:
    return rng.choices(list(weights), list(weights.values()))[0]


def lognormal_s(rng: random.Random, median_s: float, sigma: float, lo: float, hi: float) -> float:
    return min(hi, max(lo, rng.lognormvariate(math.log(median_s), sigma)))


# Generation -------------------------------------------------------------------------------


@dataclass
class Batch:
    """Rows waiting for the next flush, per table, and the events heap (time order)."""

    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    heap: list[tuple[dt.datetime, int, dict[str, Any]]] = field(default_factory=list)
    ready: list[dict[str, Any]] = field(default_factory=list)  # events out of the heap
    tick: int = 0
    counted: int = 0  # events made so far (heap, ready and flushed)

    def add(self, name: str, row: dict[str, Any]) -> None:
        self.rows.setdefault(name, []).append(row)

    def event(
        self,
        type_: str,
        at: dt.datetime,
        actor: str,
        data: dict[str, Any],
        incident: dict[str, Any] | None = None,
    ) -> None:
        row = {
            "type": type_,
            "actor": actor,
            "at": at,
            "incident_id": None if incident is None else incident["id"],
            "station_id": None if incident is None else incident["station_id"],
            "data": {**data, "exercise": True} if incident and incident["exercise"] else data,
        }
        self.tick += 1
        self.counted += 1
        heapq.heappush(self.heap, (at, self.tick, row))

    def release(self, before: dt.datetime | None) -> None:
        """Events before `before` (all: None) leave the heap, in time order."""
        while self.heap and (before is None or self.heap[0][0] < before):
            self.ready.append(heapq.heappop(self.heap)[2])


class Writer:
    """Bulk inserts in FK order; numbers and seals the events as it writes them."""

    ORDER = ("incidents", "offers", "assignments", "escalations", "point_awards", "feedback")

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self.next_id = 1
        self.seq = 0
        self.previous = GENESIS
        self.written: Counter[str] = Counter()

    async def rows(self, name: str, rows: list[dict[str, Any]]) -> None:
        target = TABLES[name]
        for start in range(0, len(rows), BATCH):
            await self.conn.execute(insert(target), rows[start : start + BATCH])
        self.written[name] += len(rows)

    async def flush(self, batch: Batch) -> None:
        for name in self.ORDER:
            rows = batch.rows.pop(name, [])
            if rows:
                await self.rows(name, rows)
        events, batch.ready = batch.ready, []
        for row in events:
            row["id"] = self.next_id
            self.next_id += 1
            self.seq += 1
            self.previous = link(self.previous, EVENTS, row, self.seq)
            row["chain_seq"], row["chain_hash"] = self.seq, self.previous
        if events:
            await self.rows("events", events)
        await self.conn.commit()


TABLES = {
    "incidents": table(Incident),
    "offers": table(Offer),
    "assignments": table(Assignment),
    "escalations": table(Escalation),
    "point_awards": table(PointAward),
    "feedback": table(Feedback),
    "events": table(Event),
    "security_companies": table(SecurityCompany),
    "police_stations": table(PoliceStation),
    "guards": table(Guard),
}


def make_world(rng: random.Random, batch: Batch, tz: zoneinfo.ZoneInfo) -> World:
    """Companies, stations and guards (rows and their creation events)."""
    today = dt.datetime.now(tz).date()
    last = today - dt.timedelta(days=1)
    first = last - dt.timedelta(days=DAYS - 1)
    start = local_midnight(first, tz)
    end = local_midnight(today, tz)
    founded = start - dt.timedelta(days=400)
    company_ids = []
    for i in range(COMPANIES):
        at = founded + dt.timedelta(days=i, hours=10)
        cid = ulid("cmp", at, rng)
        if i == 3:
            expires = today + dt.timedelta(days=12)  # expiring
        elif i == 7:
            expires = today - dt.timedelta(days=20)  # expired
        else:
            expires = today + dt.timedelta(days=rng.randint(60, 900))
        row = {
            "id": cid,
            "name": f"Bench Security {i + 1:02d}",
            "licence_no": f"TJ-SEC-{2019 + i % 6}-{1000 + i}",
            "licence_expires_on": expires,
            "status": "active",
            "created_at": at,
            "updated_at": at,
        }
        batch.add("security_companies", row)
        batch.event("company.created", at, "system", {"company_id": cid, "name": row["name"]})
        company_ids.append(cid)
    station_ids = []
    for cell in range(STATION_COLS * STATION_ROWS):
        at = founded + dt.timedelta(hours=cell)
        sid = ulid("stn", at, rng)
        row = {
            "id": sid,
            "name": f"Bench Police Station {cell + 1:02d}",
            "jurisdiction": jurisdiction(cell),
            "contact_phone": f"022-2{cell:03d}-0110",
            "created_at": at,
            "updated_at": at,
        }
        batch.add("police_stations", row)
        batch.event("station.created", at, "system", {"station_id": sid, "name": row["name"]})
        station_ids.append(sid)
    # Companies of very different sizes: weights 1..20 with a long tail.
    sizes = [1 / (i + 1) ** 0.7 for i in range(COMPANIES)]
    guards: list[GuardRow] = []
    by_cell: list[list[GuardRow]] = [[] for _ in station_ids]
    skills = ["first_aid", "fire_warden", "crowd_control", "driver", "k9"]
    for i in range(GUARDS):
        company = rng.choices(range(COMPANIES), sizes)[0]
        if rng.random() < 0.85:  # hired before the period
            at = founded + dt.timedelta(seconds=rng.uniform(20 * 86400, 400 * 86400))
        else:  # hired during it
            at = start + dt.timedelta(seconds=rng.uniform(0, (end - start).total_seconds()))
        at = at.replace(microsecond=rng.randrange(1_000_000))
        status, until, left_on = "active", None, None
        r = rng.random()
        if r < 0.06:
            status = "left"
            until = max(at, start) + dt.timedelta(seconds=rng.uniform(3600, 80 * 86400))
            until = min(until, end - dt.timedelta(hours=1))
            left_on = until.astimezone(tz).date()
        elif r < 0.09:
            status = "suspended"
            until = max(at, start) + dt.timedelta(seconds=rng.uniform(3600, 80 * 86400))
            until = min(until, end - dt.timedelta(hours=1))
        c = rng.random()
        if c < 0.02:
            cert = today - dt.timedelta(days=rng.randint(1, 60))
        elif c < 0.05:
            cert = today + dt.timedelta(days=rng.randint(0, 30))
        else:
            cert = today + dt.timedelta(days=rng.randint(31, 1000))
        lat, lon = offset(
            *CENTER, rng.uniform(-HALF_BOX_M, HALF_BOX_M), rng.uniform(-HALF_BOX_M, HALF_BOX_M)
        )
        cell = cell_of(lat, lon)
        assert cell is not None
        gid = ulid("grd", at, rng)
        row = {
            "id": gid,
            "company_id": company_ids[company],
            "name": f"Guard {i + 1:04d}",
            "badge_no": f"TJ-{company + 1:02d}-{i + 1:05d}",
            "phone": f"+86 138 {rng.randrange(10**8):08d}",
            "skills": rng.sample(skills, rng.randint(0, 3)),
            "certificate_expires_on": cert,
            "status": status,
            "left_on": left_on,
            "created_at": at,
            "updated_at": until or at,
        }
        batch.add("guards", row)
        batch.event(
            "guard.created", at, "system", {"guard_id": gid, "company_id": company_ids[company]}
        )
        if until is not None:
            batch.event(
                "guard.updated", until, SUPERVISOR, {"guard_id": gid, "changes": {"status": status}}
            )
        g = GuardRow(
            gid,
            company,
            cell,
            at,
            until,
            accept_p=rng.uniform(0.35, 0.92),
            speed=rng.uniform(0.7, 1.5),
            lat=lat,
            lon=lon,
        )
        guards.append(g)
        by_cell[cell].append(g)
    return World(tz, first, last, start, end, company_ids, station_ids, guards, by_cell)


class Generator:
    def __init__(self, world: World, rng: random.Random, batch: Batch) -> None:
        self.w = world
        self.rng = rng
        self.b = batch
        self.feedback_at: list[tuple[dt.datetime, dict[str, Any], GuardRow]] = []

    def pick_guards(self, cell: int | None, at: dt.datetime, k: int, taken: set[str]) -> list:
        rng = self.rng
        pool = self.w.by_cell[cell] if cell is not None else self.w.guards
        picked: list[GuardRow] = []
        for _ in range(k * 8):
            if len(picked) == k:
                break
            # mostly the incident's own area, sometimes a neighbour's guard
            g = rng.choice(pool) if rng.random() < 0.85 else rng.choice(self.w.guards)
            if g.id in taken or g.created_at > at or (g.until is not None and g.until <= at):
                continue
            taken.add(g.id)
            picked.append(g)
        return picked

    def award(
        self, g: GuardRow, incident: dict[str, Any] | None, rule: str, ref: str, at: dt.datetime
    ) -> None:
        if incident is not None and incident["exercise"]:
            return  # drills earn none
        self.b.add(
            "point_awards",
            {
                "id": ulid("pts", at, self.rng),
                "guard_id": g.id,
                "company_id": self.w.company_ids[g.company],
                "station_id": None if incident is None else incident["station_id"],
                "incident_id": None if incident is None else incident["id"],
                "rule": rule,
                "points": POINTS[rule],
                "reason": REASONS[rule],
                "ref": ref,
                "at": at,
            },
        )

    def incident(self, created: dt.datetime) -> int:
        """One incident and everything it led to; the number of events it wrote."""
        rng, b = self.rng, self.b
        before = b.counted
        lat, lon = offset(
            *CENTER,
            rng.uniform(-HALF_BOX_M * 1.05, HALF_BOX_M * 1.05),
            rng.uniform(-HALF_BOX_M * 1.05, HALF_BOX_M * 1.05),
        )
        cell = cell_of(lat, lon)
        category = weighted(rng, CATEGORIES)
        priority = weighted(rng, PRIORITIES)
        source = weighted(rng, {"console": 55, "police": 15, "alarm": 20, "guard": 10})
        if category == "alarm":
            source = "alarm"
        taken: set[str] = set()
        reporter = None
        if source == "guard":
            found = self.pick_guards(cell, created, 1, taken)
            if not found:
                source = "console"
            else:
                reporter = found[0]
        actor = f"guard:{reporter.id}" if reporter else SOURCE_ACTORS[source]
        lo, hi = REQUIRED[priority]
        required = rng.randint(lo, hi)
        inc = {
            "id": ulid("inc", created, rng),
            "source": source,
            "category": category,
            "priority": priority,
            "lat": lat,
            "lon": lon,
            "address": f"{rng.randint(1, 999)} Bench Road, Tianjin",
            "description": f"{category.replace('_', ' ')} reported",
            "reporter": None,
            "external_ref": f"ext-{rng.getrandbits(48):012x}" if source != "console" else None,
            "caller": actor[:64],
            "idempotency_scope": None,
            "idempotency_key": None,
            "request_hash": None,
            "required_guards": required,
            "assigned_count": 0,
            "wave": 0,
            "status": "closed",
            "station_id": None if cell is None else self.w.station_ids[cell],
            "station_match": None if cell is None else "contains",
            "unstaffed": False,
            "created_by": actor,
            "created_at": created,
            "updated_at": created,
            "resolved_at": None,
            "closed_at": None,
            "cancelled_at": None,
            "allowed_tiers": list(tiers_for(category, priority)),
            "exercise": rng.random() < 0.03,
        }
        b.event(
            "incident.created",
            created,
            actor,
            {
                "source": source,
                "category": category,
                "priority": priority,
                "location": {"lat": lat, "lon": lon},
                "address": inc["address"],
                "description": inc["description"],
                "external_ref": inc["external_ref"],
                "required_guards": required,
                "station_id": inc["station_id"],
                "station_match": inc["station_match"],
                "distance_to_jurisdiction_m": None if cell is None else 0.0,
            },
            inc,
        )
        cancel_at = None
        if rng.random() < 0.05:
            cancel_at = created + dt.timedelta(seconds=rng.uniform(20, 900))
        # (guard, assigned_at, source, offer id) of every assignment
        seats: list[tuple[GuardRow, dt.datetime, str, str | None]] = []
        if reporter is not None:
            seats.append((reporter, created, "report", None))
        needed = required - len(seats)
        timeout = OFFER_TIMEOUT_S[priority]
        t = created + dt.timedelta(seconds=rng.uniform(0.05, 3))
        offers_made, wave = 0, 0
        while needed > 0 and offers_made < 6 and wave < 3:
            if cancel_at is not None and t >= cancel_at:
                break
            wave += 1
            k = min(6 - offers_made, needed + rng.choice((0, 0, 1, 1, 2, 3)))
            chosen = self.pick_guards(cell, t, k, taken)
            if not chosen:
                break
            b.event(
                "dispatch.wave",
                t,
                DISPATCH,
                {
                    "wave": wave,
                    "radius_m": 1000 * wave,
                    "needed": needed,
                    "candidates": len(chosen) + rng.randint(0, 12),
                    "offered": len(chosen),
                },
                inc,
            )
            planned = []
            for rank, g in enumerate(chosen, 1):
                distance = rng.uniform(60, 1000 * wave + 500)
                eta = distance / (1.4 if distance < 800 else 6.0)
                expires = t + dt.timedelta(seconds=timeout)
                r = rng.random()
                if r < g.accept_p:
                    kind = "accepted"
                    at = t + dt.timedelta(seconds=lognormal_s(rng, 7, 0.7, 1, timeout - 0.5))
                elif r < g.accept_p + (1 - g.accept_p) * 0.55:
                    kind = "declined"
                    at = t + dt.timedelta(seconds=rng.uniform(1.5, timeout - 0.5))
                else:
                    kind, at = "expired", expires
                offer = {
                    "id": ulid("off", t, rng),
                    "incident_id": inc["id"],
                    "guard_id": g.id,
                    "wave": wave,
                    "rank": rank,
                    "distance_m": distance,
                    "eta_s": eta,
                    "travel_mode": "foot" if distance < 800 else "vehicle",
                    "offered_at": t,
                    "expires_at": expires,
                    "outcome": kind,
                    "responded_at": at,
                    "reason": None,
                }
                common = {
                    "offer_id": offer["id"],
                    "guard_id": g.id,
                    "wave": wave,
                    "distance_m": round(distance, 1),
                }
                b.event(
                    "offer.sent",
                    t,
                    DISPATCH,
                    {
                        **common,
                        "rank": rank,
                        "eta_s": round(eta),
                        "travel_mode": offer["travel_mode"],
                    },
                    inc,
                )
                planned.append((at, g, offer))
                offers_made += 1
            planned.sort(key=lambda p: p[0])
            filled_at = None
            for at, g, offer in planned:
                common = {
                    "offer_id": offer["id"],
                    "guard_id": g.id,
                    "wave": wave,
                    "distance_m": round(offer["distance_m"], 1),
                    "offered_at": t.isoformat(),
                }
                stop = filled_at or cancel_at
                if stop is not None and at >= stop:
                    reason = "filled" if filled_at else "cancelled"
                    offer.update(outcome="withdrawn", responded_at=stop, reason=reason)
                    b.event("offer.withdrawn", stop, DISPATCH, {**common, "reason": reason}, inc)
                elif offer["outcome"] == "accepted":
                    b.event(
                        "offer.accepted",
                        at,
                        f"guard:{g.id}",
                        {**common, "response_s": round((at - t).total_seconds(), 3)},
                        inc,
                    )
                    seats.append((g, at, "offer", offer["id"]))
                    needed -= 1
                    if needed == 0:
                        filled_at = at
                elif offer["outcome"] == "declined":
                    offer["reason"] = rng.choice(("busy", "too_far", "off_shift", None))
                    b.event(
                        "offer.declined",
                        at,
                        f"guard:{g.id}",
                        {**common, "reason": offer["reason"]},
                        inc,
                    )
                else:
                    b.event("offer.expired", at, DISPATCH, common, inc)
                b.add("offers", offer)
            t = max(p[0] for p in planned) + dt.timedelta(seconds=rng.uniform(0.05, 1))
        if cancel_at is None and rng.random() < 0.03:  # an operator sends one more
            extra = self.pick_guards(cell, created, 1, taken)
            if extra:
                at = created + dt.timedelta(seconds=rng.uniform(60, 400))
                seats.append((extra[0], at, "operator", None))
        unstaffed = not seats and (cancel_at is None)
        if unstaffed:
            inc["unstaffed"] = True
            b.event("incident.unstaffed", t, DISPATCH, {"offers": offers_made}, inc)
        # The assignments: travel, on scene, cleared.
        arrivals: list[tuple[dt.datetime, GuardRow, dict[str, Any]]] = []
        lost: list[tuple[GuardRow, dict[str, Any], dt.datetime]] = []
        assignments = []
        for g, at, how, offer_id in seats:
            a = {
                "id": ulid("asg", at, rng),
                "incident_id": inc["id"],
                "guard_id": g.id,
                "offer_id": offer_id,
                "source": how,
                "status": "cleared",
                "assigned_at": at,
                "on_scene_at": None,
                "cleared_at": None,
                "note": None,
            }
            inc["assigned_count"] += 1
            b.event(
                "incident.assigned",
                at,
                f"guard:{g.id}" if how != "operator" else OPERATOR,
                {
                    "assignment_id": a["id"],
                    "guard_id": g.id,
                    "source": how,
                    "offer_id": offer_id,
                    "status": "on_scene" if how == "report" else "en_route",
                    "assigned": inc["assigned_count"],
                    "required": required,
                },
                inc,
            )
            if how == "report":
                a["on_scene_at"] = at
                arrivals.append((at, g, a))
            else:
                travel = lognormal_s(rng, 240, 0.6, 40, 2400) * g.speed
                arrive = at + dt.timedelta(seconds=travel)
                if rng.random() < 0.05 or (cancel_at is not None and arrive >= cancel_at):
                    lost.append((g, a, at))
                else:
                    a["on_scene_at"] = arrive
                    b.event(
                        "assignment.on_scene",
                        arrive,
                        f"guard:{g.id}",
                        {"assignment_id": a["id"], "guard_id": g.id, "note": None},
                        inc,
                    )
                    arrivals.append((arrive, g, a))
            assignments.append(a)
        arrivals.sort(key=lambda x: x[0])
        first_on_scene = arrivals[0][0] if arrivals else None
        if first_on_scene is not None:
            b.event("incident.on_scene", first_on_scene, DISPATCH, {}, inc)
            first_at, first_g, first_a = arrivals[0]
            if first_a["source"] != "report":
                rule = "first_on_scene_p1" if priority == 1 else "first_on_scene"
                self.award(first_g, inc, rule, inc["id"], first_at)
        # Police.
        police_at = handed_at = None
        escalate = unstaffed or rng.random() < ESCALATE[priority]
        if escalate and cancel_at is None:
            esc_at = created + dt.timedelta(seconds=1 if priority == 1 else rng.uniform(30, 900))
            if unstaffed:
                esc_at = t
            reason = "no_guard" if unstaffed else "policy" if priority == 1 else "operator"
            if not unstaffed and priority > 1 and rng.random() < 0.4:
                reason = "backup_request"
            station = cell if cell is not None else rng.randrange(len(self.w.station_ids))
            e = {
                "id": ulid("esc", esc_at, rng),
                "incident_id": inc["id"],
                "station_id": self.w.station_ids[station],
                "reason": reason,
                "status": "sent",
                "outside_jurisdiction": cell is None,
                "distance_to_jurisdiction_m": None if cell is not None else rng.uniform(50, 900),
                "recommended_units": [],
                "unit_id": None,
                "note": None,
                "created_at": esc_at,
                "updated_at": esc_at,
                "acknowledged_at": None,
                "police_on_scene_at": None,
                "handed_over_at": None,
            }
            base = {"escalation_id": e["id"], "station_id": e["station_id"]}
            b.event(
                "escalation.sent",
                esc_at,
                DISPATCH,
                {**base, "status": "sent", "reason": reason},
                inc,
            )
            station_actor = f"api_key:key_station{station:02d}"
            if rng.random() < 0.9:
                ack = esc_at + dt.timedelta(seconds=rng.uniform(15, 240))
                e.update(status="acknowledged", acknowledged_at=ack, updated_at=ack)
                b.event(
                    "escalation.acknowledged",
                    ack,
                    station_actor,
                    {**base, "status": "acknowledged"},
                    inc,
                )
                if rng.random() < 0.75:
                    police_at = esc_at + dt.timedelta(
                        seconds=lognormal_s(rng, 720, 0.55, 180, 5400)
                    )
                    police_at = max(police_at, ack + dt.timedelta(seconds=30))
                    e.update(
                        status="police_on_scene", police_on_scene_at=police_at, updated_at=police_at
                    )
                    b.event(
                        "escalation.police_on_scene",
                        police_at,
                        station_actor,
                        {**base, "status": "police_on_scene"},
                        inc,
                    )
                    if rng.random() < 0.65:
                        handed_at = police_at + dt.timedelta(seconds=rng.uniform(90, 1200))
                        e.update(
                            status="handed_over", handed_over_at=handed_at, updated_at=handed_at
                        )
                        b.event(
                            "escalation.handed_over",
                            handed_at,
                            station_actor,
                            {**base, "status": "handed_over"},
                            inc,
                        )
            b.add("escalations", e)
        # The end: resolved, cleared, closed (or cancelled).
        if cancel_at is not None:
            end = cancel_at
            inc.update(status="cancelled", cancelled_at=cancel_at)
            b.event("incident.cancelled", cancel_at, OPERATOR, {"reason": "false alarm"}, inc)
        else:
            resolved = None
            if first_on_scene is not None:
                resolved = first_on_scene + dt.timedelta(
                    seconds=lognormal_s(rng, 1200, 0.6, 120, 14400)
                )
            elif police_at is not None:
                resolved = police_at + dt.timedelta(seconds=rng.uniform(600, 3600))
            if handed_at is not None:
                resolved = max(
                    resolved or handed_at, handed_at + dt.timedelta(seconds=rng.uniform(60, 600))
                )
            if resolved is not None:
                last_arrival = arrivals[-1][0] if arrivals else resolved
                resolved = max(resolved, last_arrival + dt.timedelta(seconds=60))
                inc["resolved_at"] = resolved
                b.event(
                    "incident.resolved",
                    resolved,
                    f"guard:{arrivals[0][1].id}" if arrivals else OPERATOR,
                    {},
                    inc,
                )
            end = resolved or (t + dt.timedelta(seconds=rng.uniform(600, 3600)))
            closed = end + dt.timedelta(seconds=rng.uniform(120, 7200))
            inc["closed_at"] = closed
            b.event("incident.closed", closed, OPERATOR, {}, inc)
        for a in assignments:
            g_id = a["guard_id"]
            if a["on_scene_at"] is None:
                g = next(s[0] for s in seats if s[0].id == g_id)
                gone = a["assigned_at"] + dt.timedelta(seconds=rng.uniform(120, 1200))
                gone = min(gone, end) if cancel_at is None else cancel_at
                gone = max(gone, a["assigned_at"] + dt.timedelta(seconds=1))
                a["cleared_at"] = gone
                if cancel_at is None and rng.random() < 0.5:
                    b.event(
                        "assignment.guard_lost",
                        gone,
                        DISPATCH,
                        {"assignment_id": a["id"], "guard_id": g_id},
                        inc,
                    )
                else:
                    b.event(
                        "assignment.cleared",
                        gone,
                        f"guard:{g_id}",
                        {"assignment_id": a["id"], "guard_id": g_id, "note": "stood down"},
                        inc,
                    )
                if cancel_at is None:
                    self.award(g, inc, "no_show", inc["id"], gone)
            else:
                cleared = max(
                    a["on_scene_at"] + dt.timedelta(seconds=60),
                    end - dt.timedelta(seconds=rng.uniform(0, 300)),
                )
                a["cleared_at"] = cleared
                b.event(
                    "assignment.cleared",
                    cleared,
                    f"guard:{g_id}",
                    {"assignment_id": a["id"], "guard_id": g_id, "note": None},
                    inc,
                )
            b.add("assignments", a)
        if handed_at is not None:
            for arrive, g, _ in arrivals:
                if arrive <= handed_at:
                    self.award(g, inc, "clean_handover", inc["id"], handed_at)
        # Supervisors' feedback on guards who were on scene, now and then.
        if arrivals and cancel_at is None and not inc["exercise"]:
            r = rng.random()
            kind = "commendation" if r < 0.015 else "complaint" if r < 0.02 else None
            if kind is not None:
                g = rng.choice(arrivals)[1]
                at = inc["closed_at"] + dt.timedelta(seconds=rng.uniform(600, 2 * 86400))
                at = max(min(at, self.w.end), inc["closed_at"] + dt.timedelta(seconds=60))
                fid = ulid("fbk", at, rng)
                self.b.add(
                    "feedback",
                    {
                        "id": fid,
                        "incident_id": inc["id"],
                        "guard_id": g.id,
                        "company_id": self.w.company_ids[g.company],
                        "kind": kind,
                        "text": "Calm and quick, kept the scene safe"
                        if kind == "commendation"
                        else "Left the scene before the police arrived",
                        "created_by": SUPERVISOR,
                        "created_at": at,
                    },
                )
                b.event(
                    f"incident.{kind}",
                    at,
                    SUPERVISOR,
                    {
                        "feedback_id": fid,
                        "guard_id": g.id,
                        "company_id": self.w.company_ids[g.company],
                    },
                    inc,
                )
                self.award(g, inc, kind, fid, at)
        inc["wave"] = wave
        inc["updated_at"] = max(inc["closed_at"] or end, end)
        b.add("incidents", inc)
        return b.counted - before

    def intel(self, at: dt.datetime) -> None:
        """A guard's intel report found useful: points with no incident."""
        g = self.rng.choice(self.w.guards)
        if g.created_at <= at and (g.until is None or g.until > at):
            self.award(g, None, "intel_useful", ulid("itl", at, self.rng), at)

    def duty(self, start: dt.datetime, seconds: float, count: int) -> None:
        """`count` guard.on_duty / off_duty events within `seconds` after `start`."""
        rng = self.rng
        for _ in range(count):
            g = rng.choice(self.w.guards)
            at = start + dt.timedelta(seconds=rng.uniform(0, seconds))
            kind = "guard.on_duty" if rng.random() < 0.5 else "guard.off_duty"
            self.b.event(kind, at, f"guard:{g.id}", {"guard_id": g.id})


def day_times(rng: random.Random, day_start: dt.datetime, n: int) -> list[dt.datetime]:
    hours = rng.choices(range(24), HOURLY, k=n)
    return sorted(day_start + dt.timedelta(hours=h, seconds=rng.uniform(0, 3600)) for h in hours)


def events_per_incident(world: World, seed: int) -> float:
    """The average events per incident of this model, from a sample not written anywhere."""
    rng = random.Random(seed ^ 0x5A5A)
    gen = Generator(world, rng, Batch())
    at = world.start + dt.timedelta(days=DAYS // 2)
    n = 3000
    return sum(gen.incident(at + dt.timedelta(seconds=i * 60)) for i in range(n)) / n


async def generate(url: str, events: int, seed: int) -> dict[str, int]:
    """Fill a migrated, empty database; row counts per table."""
    tz = zoneinfo.ZoneInfo(os.environ.get("DISPATCH_TIMEZONE", "Asia/Shanghai"))
    rng = random.Random(seed)
    batch = Batch()
    world = make_world(rng, batch, tz)
    engine = bulk_engine(url)
    try:
        async with engine.connect() as conn:
            if await conn.scalar(select(func.count()).select_from(table(Event))):
                raise SystemExit(f"{url} already has events: generate into an empty database")
            writer = Writer(conn)
            for name in ("security_companies", "police_stations", "guards"):
                await writer.rows(name, batch.rows.pop(name))
            await conn.commit()
            per_incident = events_per_incident(world, seed)
            registry = batch.counted
            # Incidents for ~97 % of the events; guards' duty changes make up the rest.
            planned = max(1, int((events - registry) * 0.97 / per_incident))
            daily = [
                rng.uniform(0.85, 1.15)
                * (1.1 if (world.first + dt.timedelta(d)).weekday() >= 5 else 1)
                for d in range(DAYS)
            ]
            scale = planned / sum(daily)
            counts = [round(w * scale) for w in daily]
            gen = Generator(world, rng, batch)
            for d in range(DAYS):
                day = world.first + dt.timedelta(days=d)
                start = local_midnight(day, tz)
                times = day_times(rng, start, counts[d])
                # Duty changes first (the heap keeps time order): the share that steers the
                # total towards `events`; the last day's remainder comes after its incidents.
                expected = sum(counts[d:]) * per_incident
                gen.duty(
                    start, 86400.0, max(0, round((events - batch.counted - expected) / (DAYS - d)))
                )
                for _ in range(rng.randint(3, 12)):
                    gen.intel(start + dt.timedelta(seconds=rng.uniform(0, 86400)))
                for at in times:
                    batch.release(at - dt.timedelta(hours=12))
                    if batch.counted + MAX_PER_INCIDENT > events:
                        break  # never overshoot: duty changes make up the rest
                    gen.incident(at)
                    if len(batch.ready) >= FLUSH_EVENTS:
                        await writer.flush(batch)
            last = max(world.start, batch.heap[0][0] if batch.heap else world.start)
            end = local_midnight(world.last + dt.timedelta(days=1), tz)
            gen.duty(last, max(60.0, (end - last).total_seconds()), events - batch.counted)
            batch.release(None)
            await writer.flush(batch)
            await finish(conn, writer)
            counts_out = {
                name: await conn.scalar(select(func.count()).select_from(t))
                for name, t in TABLES.items()
            }
            counts_out["incidents (drills)"] = await conn.scalar(
                select(func.count()).select_from(table(Incident)).where(table(Incident).c.exercise)
            )
            await conn.commit()
    finally:
        await engine.dispose()
    return counts_out


async def finish(conn: AsyncConnection, writer: Writer) -> None:
    """The chain head where the sealer would have left it; sequences; statistics."""
    heads = table(ChainHead)
    await conn.execute(
        insert(heads).values(
            name=EVENTS.name,
            last_id=writer.next_id - 1,
            last_seq=writer.seq,
            last_hash=writer.previous,
            sealed_at=dt.datetime.now(UTC),
        )
    )
    if conn.dialect.name == "postgresql":
        await conn.execute(
            text("SELECT setval(pg_get_serial_sequence('events', 'id'), :v)"),
            {"v": writer.next_id - 1},
        )
    await conn.commit()
    if conn.dialect.name == "postgresql":
        # Autovacuum would analyze tables this size within a minute; do it now.
        await conn.execute(text("ANALYZE"))
        await conn.commit()


def bulk_engine(url: str) -> AsyncEngine:
    engine = create_async_engine(url, poolclass=NullPool)
    if url.startswith("sqlite"):

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=OFF")  # a bench load, not the service's data
            cursor.execute("PRAGMA cache_size=-262144")
            cursor.close()

    return engine


# Databases --------------------------------------------------------------------------------


def is_pg(url: str) -> bool:
    return url.startswith("postgresql")


async def pg_admin() -> asyncpg.Connection:
    dsn, _ = pg_dsn(PG_URL)
    return await asyncpg.connect(f"{dsn}/postgres")


@contextlib.asynccontextmanager
async def new_database(args: argparse.Namespace) -> AsyncIterator[str]:
    """The database to generate into (created here), removed afterwards unless --keep."""
    if args.database_url:
        url = args.database_url
    elif args.db == "postgres":
        url = PG_URL.rpartition("/")[0] + f"/dispatch_bench_reports_{uuid.uuid4().hex[:8]}"
    else:
        folder = Path(tempfile.gettempdir())
        url = f"sqlite+aiosqlite:///{folder / f'dispatch-bench-reports-{uuid.uuid4().hex[:8]}.db'}"
    if is_pg(url):
        dsn, name = pg_dsn(url)
        if name in ("test", "postgres", "template0", "template1"):
            raise SystemExit(f"refusing to generate into the database {name!r}")
        admin = await pg_admin()
        try:
            if await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
                raise SystemExit(f"database {name} exists: drop it, or time it with --reuse")
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
    else:
        path = Path(url.split("///", 1)[1])
        if path.exists():
            raise SystemExit(f"{path} exists: remove it, or time it with --reuse")
    try:
        yield url
    finally:
        if args.keep:
            print(f"\nkept the database: --reuse {url}")
        elif is_pg(url):
            admin = await pg_admin()
            try:
                await admin.execute(f'DROP DATABASE IF EXISTS "{pg_dsn(url)[1]}" WITH (FORCE)')
            finally:
                await admin.close()
        else:
            path = Path(url.split("///", 1)[1])
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)


# Timing -----------------------------------------------------------------------------------


@dataclass
class Timed:
    name: str
    cold_s: float
    median_s: float
    failed: int  # requests answered with an error (of 1 + runs)
    size: str


async def period(url: str) -> tuple[str, str, str]:
    """(first day, last day, a company id) of the generated data, read back."""
    tz = zoneinfo.ZoneInfo(os.environ.get("DISPATCH_TIMEZONE", "Asia/Shanghai"))
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            incidents = table(Incident)
            lo, hi = (
                await conn.execute(
                    select(func.min(incidents.c.created_at), func.max(incidents.c.created_at))
                )
            ).one()
            company = await conn.scalar(
                select(table(Guard).c.company_id)
                .group_by(table(Guard).c.company_id)
                .order_by(func.count().desc())
                .limit(1)
            )
    finally:
        await engine.dispose()
    if lo is None:
        raise SystemExit(f"{url} has no incidents: generate first")

    def local(value: Any) -> str:
        if isinstance(value, str):  # SQLite through func.min: text
            value = dt.datetime.fromisoformat(value)
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(tz).date().isoformat()

    return local(lo), local(hi), str(company)


def reports(first: str, last: str, company: str) -> list[tuple[str, str, dict[str, str]]]:
    span = {"from": first, "to": last}
    response = "/api/v1/reports/response"
    distribution = "/api/v1/reports/response/distribution"
    return [
        ("response by guard", response, {"group_by": "guard", **span}),
        ("response by company", response, {"group_by": "company", **span}),
        ("response by station", response, {"group_by": "station", **span}),
        ("response by day", response, {"group_by": "day", **span}),
        ("response by guard, CSV", response, {"group_by": "guard", "format": "csv", **span}),
        (
            "response by day, 1 company",
            response,
            {"group_by": "day", "company_id": company, **span},
        ),
        ("distribution accept_s", distribution, {"measure": "accept_s", **span}),
        ("distribution on_scene_s", distribution, {"measure": "on_scene_s", **span}),
        ("distribution minutes_gained", distribution, {"measure": "minutes_gained", **span}),
        ("companies", "/api/v1/reports/companies", span),
        ("leaderboard", "/api/v1/reports/leaderboard", span),
        ("leaderboard, 1 company", "/api/v1/reports/leaderboard", {"company_id": company, **span}),
    ]


async def period_check(client: httpx.AsyncClient, first: str, last: str) -> dict[str, str]:
    """Extra query parameters that make the server answer for [first, last]: none if it
    takes `from` and `to` as issue 12 names them."""
    asked = {"limit": "1", "from": first, "to": last}  # the cheapest report
    for extra in ({}, {"last": last}):
        response = await client.get("/api/v1/reports/leaderboard", params={**asked, **extra})
        response.raise_for_status()
        body = response.json()
        if (body["from"], body["to"]) == (first, last):
            if extra:
                print(
                    "  WARNING: the server ignores `to` (its query parameter is named "
                    f"{list(extra)}): timed with {extra} as well"
                )
            return extra
        print(
            f"  WARNING: asked for {first}..{last}, the server answered "
            f"{body['from']}..{body['to']}"
        )
    raise SystemExit("the server does not answer for the asked period")


def describe(response: httpx.Response) -> str:
    if response.status_code != 200:
        return response.text[:120].replace("\n", " ")
    if "json" not in response.headers.get("content-type", ""):
        return f"{response.text.count(chr(10))} lines"
    body = response.json()
    for key in ("items", "buckets"):
        if key in body:
            return f"{len(body[key])} {key}"
    return f"{len(response.content)} bytes"


async def time_reports(url: str, runs: int) -> list[Timed]:
    first, last, company = await period(url)
    print(f"reports over {first} .. {last} (local days), timed over HTTP as an admin")
    with tempfile.TemporaryDirectory(prefix="dispatch-bench-") as tmpdir:
        server = Server(url, Path(tmpdir))
        with contextlib.suppress(RuntimeError):  # exists already in a reused database
            server.cli(
                "create-user", "--username", ADMIN_USER, "--password", ADMIN_PASSWORD,
                "--role", "admin",
            )  # fmt: skip
        await server.start()
        load0 = os.getloadavg()[0]
        try:
            client = await admin_client(server)
            client.timeout = httpx.Timeout(300)
            out = []
            try:
                extra = await period_check(client, first, last)
                for name, path, params in reports(first, last, company):
                    params = {**params, **extra}
                    times, failed, response = [], [], None
                    for _ in range(1 + runs):
                        t0 = time.perf_counter()
                        response = await client.get(path, params=params)
                        times.append(time.perf_counter() - t0)
                        if response.status_code != 200:
                            failed.append(response)
                    assert response is not None
                    median = statistics.median(times[1:]) if len(times) > 1 else math.nan
                    shown = failed[0] if failed else response
                    out.append(Timed(name, times[0], median, len(failed), describe(shown)))
                    print(
                        f"  {name}: cold {times[0]:.2f} s, median {median:.2f} s "
                        f"({out[-1].size}{f'; {len(failed)} failed' if failed else ''})"
                    )
            finally:
                await client.aclose()
            print(
                f"  server RSS after the reports: {server.rss_kib() / 1024:.0f} MiB; load "
                f"average (1 min) {load0:.1f} before, {os.getloadavg()[0]:.1f} after: other "
                "work on the machine slows the figures"
            )
        finally:
            await server.stop()
    return out


def print_table(kind: str, results: list[Timed]) -> None:
    goal = GOAL_S[kind]
    print(f"\nsupervision reports, {kind}, goal <= {goal:.0f} s (issue 12)")
    print(f"  {'report':<30} {'cold s':>8} {'median s':>9} {'goal s':>7}  verdict")
    for r in results:
        if r.failed:
            verdict = f"NOT met: {r.failed} of the requests failed"
        elif max(r.cold_s, r.median_s) <= goal:
            verdict = "met"
        elif r.median_s <= goal:
            verdict = "met warm, NOT cold"
        else:
            verdict = "NOT met"
        print(f"  {r.name:<30} {r.cold_s:>8.2f} {r.median_s:>9.2f} {goal:>7.0f}  {verdict}")


# Main -------------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> None:
    if args.reuse:
        results = await time_reports(args.reuse, args.runs)
        print_table("postgresql" if is_pg(args.reuse) else "sqlite", results)
        return
    async with new_database(args) as url:
        print(f"database: {url}")
        t0 = time.perf_counter()
        await asyncio.to_thread(migrate.upgrade, url)
        t1 = time.perf_counter()
        counts = await generate(url, args.events, args.seed)
        t2 = time.perf_counter()
        print(f"migrated in {t1 - t0:.1f} s; generated in {t2 - t1:.1f} s (seed {args.seed}):")
        for name, count in counts.items():
            print(f"  {name:<20} {count:>10,}")
        if counts["events"] != args.events:
            print(f"  (events: {counts['events']:,}, asked for {args.events:,})")
        if args.generate_only:
            return
        results = await time_reports(url, args.runs)
        print_table("postgresql" if is_pg(url) else "sqlite", results)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument(
        "--database-url",
        help="generate into this database (created here; it must not exist yet)",
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=20261212)
    parser.add_argument("--runs", type=int, default=RUNS, help="timed runs after the cold one")
    parser.add_argument("--keep", action="store_true", help="leave the generated database")
    parser.add_argument("--reuse", metavar="URL", help="time a database kept with --keep")
    parser.add_argument(
        "--generate-only", action="store_true", help="generate (with --keep) and stop"
    )
    args = parser.parse_args()
    print(machine_line())
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
