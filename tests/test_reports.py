"""Supervision reports (issue 12), checked by hand.

A server of its own on a database of its own holds one small fixed timeline, written
straight into the tables with explicit UTC times; every figure a test expects is worked
out by hand in the comments next to it (nothing here re-implements a formula). Days are
local (Asia/Shanghai, UTC+8): 2026-03-01T15:30Z is 23:30 on 03-01, 2026-03-01T16:30Z is
00:30 on 03-02. The harness clock stands at 2026-03-19T16:30Z, which is already 00:30 on
2026-03-20 locally: "today" for licences and certificates is 2026-03-20.

The timeline (period 2026-03-01 .. 2026-03-03 local):

  companies  Alpha Security (licence 2026-04-19), Bravo Guards (2026-03-19),
             Charlie Patrol (2026-04-20, only in a drill), Delta Watch (2026-03-20, no guards)
  stations   Harbour Station, Xinhua Station
  guards     Ann Li, Bo Chen (Alpha); Cai Wu, Dan Xu (Bravo); Fei Hu (Charlie);
             and, outside the incidents, Eli Ma / Gus Ye / Hao Lin (Alpha),
             Ivy Qin / Jun Bai (Bravo), Kai Zhou (Charlie)

  I1 Harbour, 03-01 10:00 local (02:00Z), resolved 02:30Z
     Ann offered 02:00:10, accepted 02:00:40 (30 s); on scene 02:06:00 (360 s)
     Bo offered 02:00:10, declined 02:00:25
     police on scene 02:16:00 (Ann 10 min earlier), handed over 02:20
  I2 Harbour, 03-01 23:30 local (15:30Z), resolved 16:00Z
     Cai offered 15:30:05, expired 15:31:05
     Bo offered 15:31:05, accepted 15:31:50 (45 s); on scene 15:45:00 (900 s)
     police on scene 15:40:00 (first: minutes gained 0), no handover
  I3 Xinhua, 03-02 00:30 local (16:30Z on 03-01), resolved 16:50Z, no police
     Ann offered 16:30:10, withdrawn 16:30:50
     Cai offered 16:30:10, accepted 16:30:30 (20 s); on scene 16:34:00 (240 s)
  I4 outside every station, 03-02 11:00 local (03:00Z), on scene, not resolved
     Bo offered 03:01:00, still open
     Dan assigned by an operator (no offer) 03:05:00; on scene 03:12:30 (750 s)
     escalated to Xinhua: police on scene 03:20:00 (7.5 min later), handed over 03:25
  I9 Harbour, 03-02 18:00 local (10:00Z), cancelled 10:05Z
     Bo offered 10:00:10, declined 10:00:30; Cai offered 10:00:10, expired 10:01:10;
     Ann offered 10:00:10, withdrawn 10:05:00
     Dan assigned by an operator 10:02:00, never on scene, cleared 10:05
     escalated to Harbour 10:03: police never came
  I10 Xinhua, 03-03 04:00 local (20:00Z on 03-02): nobody offered or assigned
  I5 Xinhua, 03-03 16:00 local (08:00Z), reported by Dan from the scene, resolved 08:40Z
     Dan's report assignment: on scene 08:00:00 (at creation)
     Ann offered 08:00:05, accepted 08:01:05 (60 s); on scene 08:09:00 (540 s)
     police on scene 08:12:00 (12 min after Dan, 3 min after Ann), handed over 08:30
  I6 Harbour, 03-02 13:00 local: a drill (Ann, Fei, Bo, police): counts nowhere
  I7 Harbour, 02-28 23:59:59 local (15:59:59Z): before the period
     Ann offered 16:00:09Z (inside the period's UTC span), accepted 30 s, on scene 360 s
  I8 Xinhua, 03-04 00:00:00 local (16:00Z on 03-03): after the period; Cai declined
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.ids import new_id
from app.models import (
    Assignment,
    Escalation,
    Guard,
    Incident,
    Offer,
    PoliceStation,
    SecurityCompany,
)
from tests.conftest import PG_URL
from tests.harness import Harness, fresh_database, square, start_harness
from tests.test_errors import assert_error

pytestmark = pytest.mark.usefixtures("backend")

UTC = dt.UTC
PERIOD = {"from": "2026-03-01", "to": "2026-03-03"}
NOW = dt.datetime(2026, 3, 19, 16, 30, tzinfo=UTC)  # 00:30 on 2026-03-20 in Shanghai
SETUP_S = 60.0

ROW_FIELDS = [
    "key",
    "name",
    "incidents",
    "offers",
    "accepted",
    "declines",
    "expiries",
    "acceptance_rate",
    "accept_s_p50",
    "accept_s_p90",
    "on_scene_s_p50",
    "on_scene_s_p90",
    "early_disposals",
    "minutes_gained_p50",
    "minutes_gained_total",
    "escalations",
    "handovers",
]


def row(
    key: str | None,
    name: str,
    *,
    incidents: int = 0,
    offers: int = 0,
    accepted: int = 0,
    declines: int = 0,
    expiries: int = 0,
    rate: float | None = None,
    accept_s: tuple[float | None, float | None] = (None, None),
    on_scene_s: tuple[float | None, float | None] = (None, None),
    early: int = 0,
    gained: tuple[float | None, float] = (None, 0),
    escalations: int = 0,
    handovers: int = 0,
) -> dict[str, Any]:
    """A whole report row; the defaults are the figures of an empty row."""
    return {
        "key": key,
        "name": name,
        "incidents": incidents,
        "offers": offers,
        "accepted": accepted,
        "declines": declines,
        "expiries": expiries,
        "acceptance_rate": rate,
        "accept_s_p50": accept_s[0],
        "accept_s_p90": accept_s[1],
        "on_scene_s_p50": on_scene_s[0],
        "on_scene_s_p90": on_scene_s[1],
        "early_disposals": early,
        "minutes_gained_p50": gained[0],
        "minutes_gained_total": gained[1],
        "escalations": escalations,
        "handovers": handovers,
    }


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


# The timeline ------------------------------------------------------------------------


@dataclass
class Timeline:
    """Rows written straight into the tables; `ids` maps the names above to row ids."""

    ids: dict[str, str] = field(default_factory=dict)
    rows: list[Any] = field(default_factory=list)

    async def write(self, session: AsyncSession) -> None:
        """Insert the rows table by table, parents first (the models declare no
        relationships, so the unit of work would not order them)."""
        for model in (SecurityCompany, PoliceStation, Guard, Incident, Offer, Assignment):
            session.add_all([r for r in self.rows if type(r) is model])
            await session.flush()
        session.add_all([r for r in self.rows if type(r) is Escalation])

    def company(self, ref: str, name: str, licence_expires_on: str) -> None:
        self.ids[ref] = new_id("cmp")
        self.rows.append(
            SecurityCompany(
                id=self.ids[ref],
                name=name,
                licence_no=f"LIC-{ref.upper()}",
                licence_expires_on=dt.date.fromisoformat(licence_expires_on),
                status="active",
                created_at=utc("2026-01-01 00:00:00"),
                updated_at=utc("2026-01-01 00:00:00"),
            )
        )

    def guard(
        self,
        ref: str,
        company: str,
        name: str,
        *,
        status: str = "active",
        certificate: str = "2030-01-01",
        created: str = "2026-01-10 00:00:00",
    ) -> None:
        self.ids[ref] = new_id("grd")
        self.rows.append(
            Guard(
                id=self.ids[ref],
                company_id=self.ids[company],
                name=name,
                badge_no=f"B-{ref.upper()}-{self.ids[ref][-6:]}",
                skills=["first_aid"],
                certificate_expires_on=dt.date.fromisoformat(certificate),
                status=status,
                created_at=utc(created),
                updated_at=utc(created),
            )
        )

    def station(self, ref: str, name: str, center: tuple[float, float]) -> None:
        self.ids[ref] = new_id("stn")
        self.rows.append(
            PoliceStation(
                id=self.ids[ref],
                name=name,
                jurisdiction=square(center, 0.02),
                created_at=utc("2026-01-01 00:00:00"),
                updated_at=utc("2026-01-01 00:00:00"),
            )
        )

    def incident(
        self,
        ref: str,
        station: str | None,
        created: str,
        *,
        status: str = "resolved",
        resolved: str | None = None,
        cancelled: str | None = None,
        exercise: bool = False,
        source: str = "api",
        priority: int = 2,
    ) -> None:
        self.ids[ref] = new_id("inc")
        self.rows.append(
            Incident(
                id=self.ids[ref],
                source=source,
                category="theft",
                priority=priority,
                lat=31.2 if station else 31.9,
                lon=121.4 if station else 122.3,
                description=f"timeline incident {ref}",
                caller="user:usr_reports",
                required_guards=1,
                assigned_count=0,
                status=status,
                station_id=self.ids[station] if station else None,
                station_match="contains" if station else None,
                unstaffed=False,
                created_by="user:usr_reports",
                created_at=utc(created),
                updated_at=utc(created),
                resolved_at=utc(resolved) if resolved else None,
                cancelled_at=utc(cancelled) if cancelled else None,
                exercise=exercise,
            )
        )

    def offer(
        self,
        ref: str,
        incident: str,
        guard: str,
        offered: str,
        outcome: str | None,
        responded: str | None = None,
    ) -> None:
        self.ids[ref] = new_id("off")
        self.rows.append(
            Offer(
                id=self.ids[ref],
                incident_id=self.ids[incident],
                guard_id=self.ids[guard],
                wave=1,
                rank=1,
                distance_m=300.0,
                eta_s=240.0,
                travel_mode="foot",
                offered_at=utc(offered),
                expires_at=utc(offered) + dt.timedelta(seconds=60),
                outcome=outcome,
                responded_at=utc(responded) if responded else None,
            )
        )

    def assignment(
        self,
        incident: str,
        guard: str,
        source: str,
        assigned: str,
        *,
        on_scene: str | None = None,
        cleared: str | None = None,
        offer: str | None = None,
    ) -> None:
        status = "cleared" if cleared else "on_scene" if on_scene else "en_route"
        self.rows.append(
            Assignment(
                id=new_id("asg"),
                incident_id=self.ids[incident],
                guard_id=self.ids[guard],
                offer_id=self.ids[offer] if offer else None,
                source=source,
                status=status,
                assigned_at=utc(assigned),
                on_scene_at=utc(on_scene) if on_scene else None,
                cleared_at=utc(cleared) if cleared else None,
            )
        )

    def escalation(
        self,
        incident: str,
        station: str,
        created: str,
        *,
        police: str | None = None,
        handed_over: str | None = None,
        outside_jurisdiction: bool = False,
    ) -> None:
        status = "handed_over" if handed_over else "police_on_scene" if police else "sent"
        self.rows.append(
            Escalation(
                id=new_id("esc"),
                incident_id=self.ids[incident],
                station_id=self.ids[station],
                reason="operator",
                status=status,
                outside_jurisdiction=outside_jurisdiction,
                recommended_units=[],
                created_at=utc(created),
                updated_at=utc(created),
                acknowledged_at=utc(created) if police else None,
                police_on_scene_at=utc(police) if police else None,
                handed_over_at=utc(handed_over) if handed_over else None,
            )
        )


def build(t: Timeline) -> None:
    t.company("alpha", "Alpha Security", "2026-04-19")
    t.company("bravo", "Bravo Guards", "2026-03-19")
    t.company("charlie", "Charlie Patrol", "2026-04-20")
    t.company("delta", "Delta Watch", "2026-03-20")
    t.station("harbour", "Harbour Station", (31.2, 121.4))
    t.station("xinhua", "Xinhua Station", (31.3, 121.5))

    t.guard("ann", "alpha", "Ann Li", certificate="2026-04-19")
    t.guard("bo", "alpha", "Bo Chen")
    t.guard("eli", "alpha", "Eli Ma", status="suspended", certificate="2026-03-25")
    t.guard("gus", "alpha", "Gus Ye")  # leaves on 2026-03-02 (PATCH)
    # Joined at 01:00 on 2026-03-02 local, which is still 2026-03-01 in UTC.
    t.guard("hao", "alpha", "Hao Lin", certificate="2026-03-19", created="2026-03-01 17:00:00")
    t.guard("cai", "bravo", "Cai Wu", certificate="2026-03-20")
    t.guard("dan", "bravo", "Dan Xu")
    t.guard("ivy", "bravo", "Ivy Qin", certificate="2026-03-25")  # leaves today (PATCH)
    t.guard("jun", "bravo", "Jun Bai", status="suspended", certificate="2026-03-01")
    t.guard("fei", "charlie", "Fei Hu")
    t.guard("kai", "charlie", "Kai Zhou")  # leaves and comes back (PATCH)

    t.incident("i1", "harbour", "2026-03-01 02:00:00", priority=1, resolved="2026-03-01 02:30:00")
    t.offer("o1a", "i1", "ann", "2026-03-01 02:00:10", "accepted", "2026-03-01 02:00:40")
    t.offer("o1b", "i1", "bo", "2026-03-01 02:00:10", "declined", "2026-03-01 02:00:25")
    t.assignment(
        "i1", "ann", "offer", "2026-03-01 02:00:40", offer="o1a",
        on_scene="2026-03-01 02:06:00", cleared="2026-03-01 02:30:00",
    )  # fmt: skip
    t.escalation(
        "i1", "harbour", "2026-03-01 02:01:00",
        police="2026-03-01 02:16:00", handed_over="2026-03-01 02:20:00",
    )  # fmt: skip

    t.incident("i2", "harbour", "2026-03-01 15:30:00", resolved="2026-03-01 16:00:00")
    t.offer("o2a", "i2", "cai", "2026-03-01 15:30:05", "expired", "2026-03-01 15:31:05")
    t.offer("o2b", "i2", "bo", "2026-03-01 15:31:05", "accepted", "2026-03-01 15:31:50")
    t.assignment(
        "i2", "bo", "offer", "2026-03-01 15:31:50", offer="o2b",
        on_scene="2026-03-01 15:45:00", cleared="2026-03-01 16:00:00",
    )  # fmt: skip
    t.escalation("i2", "harbour", "2026-03-01 15:32:00", police="2026-03-01 15:40:00")

    t.incident("i3", "xinhua", "2026-03-01 16:30:00", resolved="2026-03-01 16:50:00")
    t.offer("o3a", "i3", "ann", "2026-03-01 16:30:10", "withdrawn", "2026-03-01 16:30:50")
    t.offer("o3b", "i3", "cai", "2026-03-01 16:30:10", "accepted", "2026-03-01 16:30:30")
    t.assignment(
        "i3", "cai", "offer", "2026-03-01 16:30:30", offer="o3b",
        on_scene="2026-03-01 16:34:00", cleared="2026-03-01 16:50:00",
    )  # fmt: skip

    t.incident("i4", None, "2026-03-02 03:00:00", status="on_scene")
    t.offer("o4a", "i4", "bo", "2026-03-02 03:01:00", None)
    t.assignment("i4", "dan", "operator", "2026-03-02 03:05:00", on_scene="2026-03-02 03:12:30")
    t.escalation(
        "i4", "xinhua", "2026-03-02 03:06:00", outside_jurisdiction=True,
        police="2026-03-02 03:20:00", handed_over="2026-03-02 03:25:00",
    )  # fmt: skip

    t.incident(
        "i9", "harbour", "2026-03-02 10:00:00", status="cancelled", cancelled="2026-03-02 10:05:00"
    )
    t.offer("o9a", "i9", "bo", "2026-03-02 10:00:10", "declined", "2026-03-02 10:00:30")
    t.offer("o9b", "i9", "cai", "2026-03-02 10:00:10", "expired", "2026-03-02 10:01:10")
    t.offer("o9c", "i9", "ann", "2026-03-02 10:00:10", "withdrawn", "2026-03-02 10:05:00")
    t.assignment("i9", "dan", "operator", "2026-03-02 10:02:00", cleared="2026-03-02 10:05:00")
    t.escalation("i9", "harbour", "2026-03-02 10:03:00")

    t.incident("i10", "xinhua", "2026-03-02 20:00:00", status="dispatching")

    t.incident(
        "i5", "xinhua", "2026-03-03 08:00:00", source="guard", resolved="2026-03-03 08:40:00"
    )
    t.assignment(
        "i5", "dan", "report", "2026-03-03 08:00:00",
        on_scene="2026-03-03 08:00:00", cleared="2026-03-03 08:40:00",
    )  # fmt: skip
    t.offer("o5a", "i5", "ann", "2026-03-03 08:00:05", "accepted", "2026-03-03 08:01:05")
    t.assignment(
        "i5", "ann", "offer", "2026-03-03 08:01:05", offer="o5a",
        on_scene="2026-03-03 08:09:00", cleared="2026-03-03 08:40:00",
    )  # fmt: skip
    t.escalation(
        "i5", "xinhua", "2026-03-03 08:02:00",
        police="2026-03-03 08:12:00", handed_over="2026-03-03 08:30:00",
    )  # fmt: skip

    # A drill: everything a real incident has, none of it counted.
    t.incident(
        "i6", "harbour", "2026-03-02 05:00:00", exercise=True, priority=1,
        resolved="2026-03-02 05:40:00",
    )  # fmt: skip
    t.offer("o6a", "i6", "ann", "2026-03-02 05:00:05", "accepted", "2026-03-02 05:00:15")
    t.offer("o6b", "i6", "fei", "2026-03-02 05:00:05", "accepted", "2026-03-02 05:00:20")
    t.offer("o6c", "i6", "bo", "2026-03-02 05:00:05", "declined", "2026-03-02 05:00:08")
    t.assignment(
        "i6", "ann", "offer", "2026-03-02 05:00:15", offer="o6a", on_scene="2026-03-02 05:03:00"
    )
    t.assignment(
        "i6", "fei", "offer", "2026-03-02 05:00:20", offer="o6b", on_scene="2026-03-02 05:04:00"
    )
    t.escalation(
        "i6", "harbour", "2026-03-02 05:01:00",
        police="2026-03-02 05:30:00", handed_over="2026-03-02 05:35:00",
    )  # fmt: skip

    # One second before the period (local), its offer already inside the period's UTC span.
    t.incident("i7", "harbour", "2026-02-28 15:59:59", resolved="2026-02-28 16:20:00")
    t.offer("o7", "i7", "ann", "2026-02-28 16:00:09", "accepted", "2026-02-28 16:00:39")
    t.assignment(
        "i7", "ann", "offer", "2026-02-28 16:00:39", offer="o7",
        on_scene="2026-02-28 16:05:59", cleared="2026-02-28 16:20:00",
    )  # fmt: skip

    # Local midnight after the period's last day: the next day's.
    t.incident("i8", "xinhua", "2026-03-03 16:00:00", status="dispatching")
    t.offer("o8", "i8", "cai", "2026-03-03 16:00:10", "declined", "2026-03-03 16:00:20")


@dataclass
class World:
    harness: Harness
    ids: dict[str, str]
    manager: dict[str, str]  # Authorization header of Alpha's company manager

    def __getitem__(self, ref: str) -> str:
        return self.ids[ref]


@pytest.fixture(scope="module")
async def world(backend: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    """A server and database of their own holding the timeline, the clock at NOW."""
    async with fresh_database(backend, PG_URL, tmp_path_factory.mktemp("reports")) as url:
        async with start_harness(url) as harness:
            async with asyncio.timeout(SETUP_S):
                timeline = Timeline()
                build(timeline)
                async with harness.ctx.db.transaction() as session:
                    await timeline.write(session)
                ids = timeline.ids
                # Tokens are signed before the clock moves back: they carry a real expiry.
                for role in ("admin", "operator", "supervisor"):
                    await harness.token(role)
                manager = {
                    "Authorization": "Bearer "
                    + await harness.token("company_manager", company_id=ids["alpha"])
                }
                harness.clock.advance((NOW - harness.now()).total_seconds())
                for guard, body in [
                    ("gus", {"status": "left", "left_on": "2026-03-02"}),
                    ("ivy", {"status": "left"}),  # today, local: 2026-03-20
                    ("kai", {"status": "left", "left_on": "2026-03-01"}),
                    ("kai", {"status": "active"}),  # back: left_on cleared
                ]:
                    changed = await harness.patch(f"/api/v1/guards/{ids[guard]}", body)
                    assert changed.status_code == 200, changed.text
            yield World(harness, ids, manager)


async def response_report(world: World, **params: Any) -> dict[str, Any]:
    asked = {name: value for name, value in {**PERIOD, **params}.items() if value is not None}
    got = await world.harness.get("/api/v1/reports/response", params=asked)
    assert got.status_code == 200, got.text
    body = dict(got.json())
    assert set(body) == {"group_by", "from", "to", "timezone", "items", "total"}
    assert body["timezone"] == "Asia/Shanghai"
    for item in [*body["items"], body["total"]]:
        assert list(item) == ROW_FIELDS
    return body


def as_total(expected: dict[str, Any]) -> dict[str, Any]:
    return {**expected, "key": None, "name": "All"}


# Figures of the whole period, over every guard (participation) or every incident.
#   offers 11: o1a o1b o2a o2b o3a o3b o4a o5a o9a o9b o9c
#   accepted 4 (o1a o2b o3b o5a), declined 2 (o1b o9a), expired 2 (o2a o9b); 4/8 = 0.5
#   accept_s [20, 30, 45, 60]: p50 = #ceil(2) = 30, p90 = #ceil(3.6) = #4 = 60
#   on_scene_s [240, 360, 540, 750, 900] (Dan's report on I5 left out, I9 never on scene):
#     p50 = #ceil(2.5) = #3 = 540, p90 = #ceil(4.5) = #5 = 900
#   early disposals: I1 (02:06 < 02:16), I3 (no police), I5 (Dan 08:00 < 08:12) = 3
#   minutes gained: I1 10, I2 0 (police first), I4 7.5, I5 12 (Dan's report counts):
#     [0, 7.5, 10, 12] p50 = #2 = 7.5, total 29.5
#   escalations: I1 I2 I4 I5 I9 = 5; handovers: I1 I4 I5 = 3
#   incidents: the six with a guard (I1 I2 I3 I4 I5 I9); I10 as well when incident based
def whole_period(incidents: int) -> dict[str, Any]:
    return row(
        None, "All", incidents=incidents, offers=11, accepted=4, declines=2, expiries=2,
        rate=0.5, accept_s=(30.0, 60.0), on_scene_s=(540.0, 900.0), early=3,
        gained=(7.5, 29.5), escalations=5, handovers=3,
    )  # fmt: skip


def guard_rows(w: World) -> dict[str, dict[str, Any]]:
    return {
        # I1 I3 I5 I9; offers o1a o3a o5a o9c: accepted 2, none declined/expired: 2/2 = 1.0
        # accept [30, 60]: p50 #1 = 30, p90 #ceil(1.8) = #2 = 60; on scene [360, 540]
        # worked I1, I5: both resolved with Ann before the police (02:06 < 02:16,
        # 08:09 < 08:12): 2 early; gained [3, 10]: p50 #1 = 3, total 13; both handed over
        "ann": row(
            w["ann"], "Ann Li", incidents=4, offers=4, accepted=2, rate=1.0,
            accept_s=(30.0, 60.0), on_scene_s=(360.0, 540.0), early=2, gained=(3.0, 13.0),
            escalations=2, handovers=2,
        ),
        # I1 I2 I4 I9; offers o1b o2b o4a(open) o9a: accepted 1, declined 2: 1/3 = 0.3333
        # accept [45]; on scene [900]; worked I2: police first, gained 0; no handover
        "bo": row(
            w["bo"], "Bo Chen", incidents=4, offers=4, accepted=1, declines=2, rate=0.3333,
            accept_s=(45.0, 45.0), on_scene_s=(900.0, 900.0), early=0, gained=(0.0, 0.0),
            escalations=1, handovers=0,
        ),
        # I2 I3 I9; offers o2a(expired) o3b o9b(expired): 1/3 = 0.3333; accept [20]
        # on scene [240]; worked I3: resolved, police never came: 1 early, nothing gained
        "cai": row(
            w["cai"], "Cai Wu", incidents=3, offers=3, accepted=1, expiries=2, rate=0.3333,
            accept_s=(20.0, 20.0), on_scene_s=(240.0, 240.0), early=1, gained=(None, 0),
        ),
        # I4 I5 I9, no offers: rate null; on scene [750] (report on I5 left out, I9 never)
        # worked I4 (not resolved), I5 (resolved, 08:00 < 08:12: early), I9 (cancelled)
        # gained I4 7.5, I5 12: p50 #1 = 7.5, total 19.5; escalations I4 I5 I9, handed I4 I5
        "dan": row(
            w["dan"], "Dan Xu", incidents=3, on_scene_s=(750.0, 750.0), early=1,
            gained=(7.5, 19.5), escalations=3, handovers=2,
        ),
    }  # fmt: skip


def company_rows(w: World) -> dict[str, dict[str, Any]]:
    return {
        # Ann + Bo: I1 I2 I3 I4 I5 I9; offers 4 + 4 = 8: accepted 3 (o1a o2b o5a),
        # declined 2 (o1b o9a): 3/5 = 0.6; accept [30, 45, 60]: p50 #2 = 45, p90 #3 = 60
        # on scene [360, 540, 900]: p50 #2 = 540, p90 #3 = 900
        # worked I1 (Ann), I2 (Bo), I5 (Ann): early I1, I5 = 2
        # gained I1 10, I2 0, I5 3 (Ann, not Dan's 08:00): [0, 3, 10] p50 #2 = 3, total 13
        # escalations I1 I2 I5 = 3, handovers I1 I5 = 2
        "alpha": row(
            w["alpha"], "Alpha Security", incidents=6, offers=8, accepted=3, declines=2,
            rate=0.6, accept_s=(45.0, 60.0), on_scene_s=(540.0, 900.0), early=2,
            gained=(3.0, 13.0), escalations=3, handovers=2,
        ),
        # Cai + Dan: I2 I3 I4 I5 I9; offers 3: 1 accepted, 2 expired: 0.3333; accept [20]
        # on scene [240, 750]: p50 #1 = 240, p90 #2 = 750
        # worked I3 (Cai), I4 I5 I9 (Dan); I2 only an offer: early I3, I5 = 2
        # gained I4 7.5, I5 12: p50 7.5, total 19.5; escalations I4 I5 I9, handed I4 I5
        "bravo": row(
            w["bravo"], "Bravo Guards", incidents=5, offers=3, accepted=1, expiries=2,
            rate=0.3333, accept_s=(20.0, 20.0), on_scene_s=(240.0, 750.0), early=2,
            gained=(7.5, 19.5), escalations=3, handovers=2,
        ),
    }  # fmt: skip


def alpha_station_rows(w: World) -> list[dict[str, Any]]:
    """Station rows of Alpha's guards only (a company filter: participation based)."""
    return [
        # I1 I2 I9; offers o1a o1b o2b o9a o9c: accepted 2, declined 2: 2/4 = 0.5
        # accept [30, 45]: p50 #1 = 30, p90 #2 = 45; on scene [360, 900]
        # worked I1, I2 (I9: Ann only an offer): early I1; gained [0, 10]: p50 #1 = 0,
        # total 10; escalations I1 I2, handed I1
        row(
            w["harbour"], "Harbour Station", incidents=3, offers=5, accepted=2, declines=2,
            rate=0.5, accept_s=(30.0, 45.0), on_scene_s=(360.0, 900.0), early=1,
            gained=(0.0, 10.0), escalations=2, handovers=1,
        ),
        # I4: Bo's open offer only; nothing worked
        row(None, "No station", incidents=1, offers=1),
        # I3 I5; offers o3a(withdrawn) o5a: 1/1 = 1.0; accept [60]; on scene [540]
        # worked I5 (Ann 08:09 < police 08:12): early 1, gained 3; escalated, handed over
        row(
            w["xinhua"], "Xinhua Station", incidents=2, offers=2, accepted=1, rate=1.0,
            accept_s=(60.0, 60.0), on_scene_s=(540.0, 540.0), early=1, gained=(3.0, 3.0),
            escalations=1, handovers=1,
        ),
    ]  # fmt: skip


# Grouped reports ----------------------------------------------------------------------


async def test_guard_rows_count_each_guards_own_offers_and_assignments(world: World) -> None:
    body = await response_report(world, group_by="guard")
    assert (body["group_by"], body["from"], body["to"]) == ("guard", "2026-03-01", "2026-03-03")
    rows = guard_rows(world)
    # Sorted by name; Fei Hu (a drill only) has no row.
    assert body["items"] == [rows["ann"], rows["bo"], rows["cai"], rows["dan"]]
    assert body["total"] == whole_period(incidents=6)


async def test_company_rows_pool_their_guards_and_leave_drill_only_companies_out(
    world: World,
) -> None:
    body = await response_report(world, group_by="company")
    rows = company_rows(world)
    assert body["items"] == [rows["alpha"], rows["bravo"]]  # no Charlie Patrol: drill only
    assert body["total"] == whole_period(incidents=6)


async def test_station_rows_are_incident_based_with_a_no_station_row(world: World) -> None:
    body = await response_report(world, group_by="station")
    assert body["items"] == [
        # I1 I2 I9 (the drill I6 and I7 before the period left out)
        # offers o1a o1b o2a o2b o9a o9b o9c: accepted 2, declined 2, expired 2: 2/6
        # accept [30, 45]; on scene [360, 900]; early I1; gained I1 10, I2 0:
        # p50 #1 = 0, total 10; escalations I1 I2 I9, handed I1
        row(
            world["harbour"], "Harbour Station", incidents=3, offers=7, accepted=2,
            declines=2, expiries=2, rate=0.3333, accept_s=(30.0, 45.0),
            on_scene_s=(360.0, 900.0), early=1, gained=(0.0, 10.0), escalations=3, handovers=1,
        ),
        # I4: Bo's open offer (no rate); Dan on scene 750 s; not resolved;
        # gained 7.5; escalated (to Xinhua, but the row is the incident's station)
        row(
            None, "No station", incidents=1, offers=1, on_scene_s=(750.0, 750.0),
            gained=(7.5, 7.5), escalations=1, handovers=1,
        ),
        # I3 I5 I10 (I8 after the period left out); offers o3a(withdrawn) o3b o5a: 2/2
        # accept [20, 60]: p50 #1 = 20, p90 #2 = 60; on scene [240, 540] (Dan's report
        # left out); early I3, I5; gained I5 12 (Dan first, 08:00); escalated I5, handed I5
        row(
            world["xinhua"], "Xinhua Station", incidents=3, offers=3, accepted=2, rate=1.0,
            accept_s=(20.0, 60.0), on_scene_s=(240.0, 540.0), early=2, gained=(12.0, 12.0),
            escalations=1, handovers=1,
        ),
    ]  # fmt: skip
    assert body["total"] == whole_period(incidents=7)  # I10 counts: incident based


async def test_day_rows_split_at_local_midnight(world: World) -> None:
    body = await response_report(world, group_by="day")
    assert body["items"] == [
        # I1 (10:00) and I2 (23:30 local, 15:30Z); offers o1a o1b o2a o2b: 2/4 = 0.5
        # accept [30, 45]; on scene [360, 900]; early I1; gained [0, 10]: p50 0, total 10
        row(
            "2026-03-01", "2026-03-01", incidents=2, offers=4, accepted=2, declines=1,
            expiries=1, rate=0.5, accept_s=(30.0, 45.0), on_scene_s=(360.0, 900.0), early=1,
            gained=(0.0, 10.0), escalations=2, handovers=1,
        ),
        # I3 (00:30 local, 16:30Z the day before), I4, I9 (the drill I6 left out)
        # offers o3a o3b o4a o9a o9b o9c: accepted 1, declined 1, expired 1: 1/3
        # accept [20]; on scene [240, 750]; early I3; gained I4 7.5;
        # escalations I4 I9, handed I4
        row(
            "2026-03-02", "2026-03-02", incidents=3, offers=6, accepted=1, declines=1,
            expiries=1, rate=0.3333, accept_s=(20.0, 20.0), on_scene_s=(240.0, 750.0),
            early=1, gained=(7.5, 7.5), escalations=2, handovers=1,
        ),
        # I10 (04:00 local, 20:00Z the day before) and I5; offer o5a: 1/1; accept [60]
        # on scene [540]; early I5; gained 12; escalated and handed over
        row(
            "2026-03-03", "2026-03-03", incidents=2, offers=1, accepted=1, rate=1.0,
            accept_s=(60.0, 60.0), on_scene_s=(540.0, 540.0), early=1, gained=(12.0, 12.0),
            escalations=1, handovers=1,
        ),
    ]  # fmt: skip
    assert body["total"] == whole_period(incidents=7)


async def test_every_day_is_listed_and_each_ends_at_local_midnight(world: World) -> None:
    body = await response_report(
        world, group_by="day", **{"from": "2026-03-03", "to": "2026-03-05"}
    )
    assert [item["key"] for item in body["items"]] == ["2026-03-03", "2026-03-04", "2026-03-05"]
    # I8 at 16:00Z on 03-03 is 00:00 on 03-04 local: Cai's declined offer, 0/1
    assert body["items"][1] == row(
        "2026-03-04", "2026-03-04", incidents=1, offers=1, declines=1, rate=0.0
    )
    assert body["items"][2] == row("2026-03-05", "2026-03-05")  # an empty day is still listed
    # I7 at 15:59:59Z on 02-28 is 23:59:59 on 02-28 local, though its offer and its guard
    # on scene fall after 16:00Z: one incident, offer o7 accepted in 30 s, on scene 360 s,
    # resolved with no police: an early disposal
    body = await response_report(
        world, group_by="day", **{"from": "2026-02-28", "to": "2026-02-28"}
    )
    expected = row(
        "2026-02-28", "2026-02-28", incidents=1, offers=1, accepted=1, rate=1.0,
        accept_s=(30.0, 30.0), on_scene_s=(360.0, 360.0), early=1,
    )  # fmt: skip
    assert body["items"] == [expected]
    assert body["total"] == as_total(expected)


async def test_the_default_period_is_the_thirty_local_days_to_today(world: World) -> None:
    got = await world.harness.get("/api/v1/reports/response", params={"group_by": "day"})
    assert got.status_code == 200, got.text
    body = got.json()
    # today is 2026-03-20 in Shanghai (the clock says 2026-03-19T16:30Z); 20 - 29 days
    assert (body["from"], body["to"]) == ("2026-02-19", "2026-03-20")
    assert len(body["items"]) == 30
    assert body["items"][0]["key"] == "2026-02-19" and body["items"][-1]["key"] == "2026-03-20"
    # The period plus I7 (02-28) and I8 (03-04): 9 incidents, offers 11 + o7 + o8 = 13,
    # accepted 4 + 1, declined 2 + 1, expired 2: 5/10 = 0.5;
    # accept [20, 30, 30, 45, 60]: p50 #3 = 30, p90 #5 = 60
    # on scene [240, 360, 360, 540, 750, 900]: p50 #3 = 360, p90 #ceil(5.4) = #6 = 900
    # early 3 + I7 = 4; minutes gained, escalations, handovers as in the period
    assert body["total"] == row(
        None, "All", incidents=9, offers=13, accepted=5, declines=3, expiries=2, rate=0.5,
        accept_s=(30.0, 60.0), on_scene_s=(360.0, 900.0), early=4, gained=(7.5, 29.5),
        escalations=5, handovers=3,
    )  # fmt: skip


async def test_a_missing_end_of_the_period_takes_its_default(world: World) -> None:
    # `to` defaults to today (2026-03-20) whether or not `from` is given
    only_from = await response_report(world, group_by="day", **{"from": "2026-03-01", "to": None})
    assert (only_from["from"], only_from["to"]) == ("2026-03-01", "2026-03-20")
    # `from` defaults to `to` - 29 days: 2026-03-03 - 29 = 2026-02-02
    only_to = await response_report(world, group_by="day", **{"from": None})
    assert (only_to["from"], only_to["to"]) == ("2026-02-02", "2026-03-03")


# Filters -------------------------------------------------------------------------------


async def test_a_company_filter_makes_station_rows_participation_based(world: World) -> None:
    body = await response_report(world, group_by="station", company_id=world["alpha"])
    assert body["items"] == alpha_station_rows(world)
    assert body["total"] == as_total(company_rows(world)["alpha"])


async def test_a_station_filter_keeps_that_stations_incidents(world: World) -> None:
    body = await response_report(world, group_by="guard", station_id=world["xinhua"])
    assert body["items"] == [
        # I3 (o3a withdrawn), I5 (o5a 60 s, on scene 540 s, 08:09 < 08:12: early, 3 min)
        row(
            world["ann"], "Ann Li", incidents=2, offers=2, accepted=1, rate=1.0,
            accept_s=(60.0, 60.0), on_scene_s=(540.0, 540.0), early=1, gained=(3.0, 3.0),
            escalations=1, handovers=1,
        ),
        # I3: o3b 20 s, on scene 240 s, resolved with no police
        row(
            world["cai"], "Cai Wu", incidents=1, offers=1, accepted=1, rate=1.0,
            accept_s=(20.0, 20.0), on_scene_s=(240.0, 240.0), early=1,
        ),
        # I5: the report assignment (no on-scene time), first on scene 08:00: 12 min
        row(
            world["dan"], "Dan Xu", incidents=1, early=1, gained=(12.0, 12.0), escalations=1,
            handovers=1,
        ),
    ]  # fmt: skip
    # Guards' incidents I3 and I5 (I10 had no guard); offers o3a o3b o5a: 2/2;
    # accept [20, 60]; on scene [240, 540]; early I3 I5; I5 gained 12 (Dan first)
    assert body["total"] == row(
        None, "All", incidents=2, offers=3, accepted=2, rate=1.0, accept_s=(20.0, 60.0),
        on_scene_s=(240.0, 540.0), early=2, gained=(12.0, 12.0), escalations=1, handovers=1,
    )  # fmt: skip


async def test_a_guard_filter_makes_day_rows_that_guards_own(world: World) -> None:
    body = await response_report(world, group_by="day", guard_id=world["bo"])
    assert body["items"] == [
        # I1 (o1b declined), I2 (o2b 45 s, on scene 900 s, police first: gained 0)
        row(
            "2026-03-01", "2026-03-01", incidents=2, offers=2, accepted=1, declines=1,
            rate=0.5, accept_s=(45.0, 45.0), on_scene_s=(900.0, 900.0), gained=(0.0, 0.0),
            escalations=1,
        ),
        # I4 (o4a open), I9 (o9a declined): 0/1 = 0.0; nothing worked
        row("2026-03-02", "2026-03-02", incidents=2, offers=2, declines=1, rate=0.0),
        row("2026-03-03", "2026-03-03"),
    ]  # fmt: skip
    assert body["total"] == as_total(guard_rows(world)["bo"])
    only = await response_report(world, group_by="guard", guard_id=world["bo"])
    assert only["items"] == [guard_rows(world)["bo"]]


# Distribution --------------------------------------------------------------------------

SECOND_EDGES = [0, 15, 30, 60, 120, 180, 300, 600, 900, 1800, None]
MINUTE_EDGES = [0, 1, 2, 5, 10, 15, 20, 30, 60, None]


def buckets(edges: list[int | None], counts: dict[int, int]) -> list[dict[str, Any]]:
    """The fixed buckets, `counts` keyed by lower edge (0 where not given)."""
    return [
        {"lower": lower, "upper": upper, "count": counts.get(lower, 0)}
        for lower, upper in zip(edges[:-1], edges[1:], strict=True)
        if lower is not None
    ]


async def distribution(world: World, measure: str, **params: Any) -> dict[str, Any]:
    got = await world.harness.get(
        "/api/v1/reports/response/distribution", params={**PERIOD, "measure": measure, **params}
    )
    assert got.status_code == 200, got.text
    body = dict(got.json())
    assert (body["measure"], body["from"], body["to"]) == (measure, "2026-03-01", "2026-03-03")
    return body


async def test_distribution_counts_values_into_fixed_buckets(world: World) -> None:
    accept = await distribution(world, "accept_s")
    # [20, 30, 45, 60]: 20 in [15, 30), 30 and 45 in [30, 60), 60 in [60, 120)
    assert accept["unit"] == "s"
    assert accept["buckets"] == buckets(SECOND_EDGES, {15: 1, 30: 2, 60: 1})
    on_scene = await distribution(world, "on_scene_s")
    # [240, 360, 540, 750, 900]: [180, 300) 1, [300, 600) 2, [600, 900) 1, [900, 1800) 1
    assert on_scene["buckets"] == buckets(SECOND_EDGES, {180: 1, 300: 2, 600: 1, 900: 1})
    gained = await distribution(world, "minutes_gained")
    # [0, 7.5, 10, 12]: [0, 1) 1, [5, 10) 1, [10, 15) 2
    assert gained["unit"] == "min"
    assert gained["buckets"] == buckets(MINUTE_EDGES, {0: 1, 5: 1, 10: 2})


async def test_distribution_follows_the_filters(world: World) -> None:
    bravo = await distribution(world, "minutes_gained", company_id=world["bravo"])
    assert bravo["buckets"] == buckets(MINUTE_EDGES, {5: 1, 10: 1})  # I4 7.5, I5 12
    ann = await distribution(world, "on_scene_s", guard_id=world["ann"])
    assert ann["buckets"] == buckets(SECOND_EDGES, {300: 2})  # 360, 540
    harbour = await distribution(world, "accept_s", station_id=world["harbour"])
    assert harbour["buckets"] == buckets(SECOND_EDGES, {30: 2})  # 30, 45


# CSV -----------------------------------------------------------------------------------


def same_cell(cell: str, value: Any) -> bool:
    if value is None:
        return cell == ""
    if isinstance(value, str):
        return cell == value
    return float(cell) == float(value)


async def test_csv_has_the_row_fields_in_order_and_empty_cells_for_null(world: World) -> None:
    expected = await response_report(world, group_by="station")
    headers = {**await world.harness.headers(), "Accept": "text/csv"}
    by_accept = await world.harness.client.get(
        "/api/v1/reports/response", params={**PERIOD, "group_by": "station"}, headers=headers
    )
    by_format = await world.harness.get(
        "/api/v1/reports/response", params={**PERIOD, "group_by": "station", "format": "csv"}
    )
    for got in (by_accept, by_format):
        assert got.status_code == 200, got.text
        assert got.headers["content-type"].startswith("text/csv")
        assert (
            got.headers["content-disposition"]
            == 'attachment; filename="response-station-2026-03-01-2026-03-03.csv"'
        )
        lines = list(csv.reader(io.StringIO(got.text)))
        assert lines[0] == ROW_FIELDS
        data = lines[1:]
        rows = expected["items"] + ([expected["total"]] if len(data) > 3 else [])
        assert len(data) == len(rows)
        for cells, want in zip(data, rows, strict=True):
            assert len(cells) == len(ROW_FIELDS)
            assert all(
                same_cell(cell, want[name]) for cell, name in zip(cells, ROW_FIELDS, strict=True)
            ), (cells, want)
        no_station = data[1]
        assert no_station[0] == "" and no_station[1] == "No station"
        assert no_station[ROW_FIELDS.index("acceptance_rate")] == ""


# The regulator's company view ----------------------------------------------------------


def company_items(w: World) -> list[dict[str, Any]]:
    kpis = company_rows(w)
    return [
        {
            "id": w["alpha"],
            "name": "Alpha Security",
            "licence_no": "LIC-ALPHA",
            "status": "active",
            "licence_expires_on": "2026-04-19",
            "licence_days_left": 30,  # 03-20 → 04-19: 11 + 19
            "licence_state": "expiring",
            # active Ann, Bo, Hao; suspended Eli; left Gus
            "guards": {"active": 3, "suspended": 1, "left": 1},
            "certificates_expiring": 1,  # Ann: 30 days (suspended Eli's 5 days don't count)
            "certificates_expired": 1,  # Hao: 2026-03-19
            # departures: Gus (left 03-02); at 03-01: Ann Bo Eli Gus (Hao joins 03-02 local)
            # at 03-03: Ann Bo Eli Hao; (4 + 4) / 2 = 4; 1 / 4
            "turnover": {
                "departures": 1,
                "headcount_start": 4,
                "headcount_end": 4,
                "average_headcount": 4.0,
                "rate": 0.25,
            },
            "kpis": kpis["alpha"],
            "commendations": 0,
            "complaints": 0,
            "points": 0,
        },
        {
            "id": w["bravo"],
            "name": "Bravo Guards",
            "licence_no": "LIC-BRAVO",
            "status": "active",
            "licence_expires_on": "2026-03-19",
            "licence_days_left": -1,
            "licence_state": "expired",
            "guards": {"active": 2, "suspended": 1, "left": 1},  # Cai Dan / Jun / Ivy
            "certificates_expiring": 1,  # Cai: today (0 days); Ivy left, Jun suspended
            "certificates_expired": 0,
            # Ivy left today (03-20), after the period: still counted at 03-03
            "turnover": {
                "departures": 0,
                "headcount_start": 4,
                "headcount_end": 4,
                "average_headcount": 4.0,
                "rate": 0.0,
            },
            "kpis": kpis["bravo"],
            "commendations": 0,
            "complaints": 0,
            "points": 0,
        },
        {
            "id": w["charlie"],
            "name": "Charlie Patrol",
            "licence_no": "LIC-CHARLIE",
            "status": "active",
            "licence_expires_on": "2026-04-20",
            "licence_days_left": 31,
            "licence_state": "valid",
            "guards": {"active": 2, "suspended": 0, "left": 0},  # Kai is back
            "certificates_expiring": 0,
            "certificates_expired": 0,
            "turnover": {
                "departures": 0,  # Kai's left_on was cleared when he came back
                "headcount_start": 2,
                "headcount_end": 2,
                "average_headcount": 2.0,
                "rate": 0.0,
            },
            "kpis": row(w["charlie"], "Charlie Patrol"),  # Fei was only in a drill
            "commendations": 0,
            "complaints": 0,
            "points": 0,
        },
        {
            "id": w["delta"],
            "name": "Delta Watch",
            "licence_no": "LIC-DELTA",
            "status": "active",
            "licence_expires_on": "2026-03-20",
            "licence_days_left": 0,
            "licence_state": "expiring",
            "guards": {"active": 0, "suspended": 0, "left": 0},
            "certificates_expiring": 0,
            "certificates_expired": 0,
            "turnover": {
                "departures": 0,
                "headcount_start": 0,
                "headcount_end": 0,
                "average_headcount": 0.0,
                "rate": None,
            },
            "kpis": row(w["delta"], "Delta Watch"),
            "commendations": 0,
            "complaints": 0,
            "points": 0,
        },
    ]


async def test_companies_view_measures_licences_from_the_local_today(world: World) -> None:
    got = await world.harness.get("/api/v1/reports/companies", params=PERIOD)
    assert got.status_code == 200, got.text
    body = got.json()
    assert (body["from"], body["to"], body["today"]) == ("2026-03-01", "2026-03-03", "2026-03-20")
    assert body["items"] == company_items(world)


async def test_turnover_counts_departures_on_the_period_s_days(world: World) -> None:
    got = await world.harness.get(
        "/api/v1/reports/companies", params={"from": "2026-03-02", "to": "2026-03-02"}
    )
    assert got.status_code == 200, got.text
    alpha = got.json()["items"][0]
    # Gus left on 03-02 (a departure, no longer counted that day); Hao joined that day
    # (01:00 local): Ann Bo Eli Hao at both ends; 1 / 4
    assert alpha["turnover"] == {
        "departures": 1,
        "headcount_start": 4,
        "headcount_end": 4,
        "average_headcount": 4.0,
        "rate": 0.25,
    }


async def test_commendations_complaints_and_points_count_in_their_own_period(
    world: World,
) -> None:
    harness = world.harness
    praised = await harness.post(
        f"/api/v1/incidents/{world['i1']}/commendations",
        {"guard_id": world["ann"], "text": "held the gate until the police came"},
        role="supervisor",
    )
    assert praised.status_code == 201, praised.text
    blamed = await harness.post(
        f"/api/v1/incidents/{world['i4']}/complaints",
        {"guard_id": world["dan"], "text": "left the scene unattended"},
        role="supervisor",
    )
    assert blamed.status_code == 201, blamed.text
    # Both written now: 2026-03-20 local. Commendation +20 to Ann (Alpha), complaint -20
    # to Dan (Bravo).
    today = await harness.get(
        "/api/v1/reports/companies", params={"from": "2026-03-20", "to": "2026-03-20"}
    )
    assert today.status_code == 200, today.text
    said = {
        item["name"]: (item["commendations"], item["complaints"], item["points"])
        for item in today.json()["items"]
    }
    assert said == {
        "Alpha Security": (1, 0, 20),
        "Bravo Guards": (0, 1, -20),
        "Charlie Patrol": (0, 0, 0),
        "Delta Watch": (0, 0, 0),
    }
    # The incidents' own period (03-01 .. 03-03) is untouched: counted by their time.
    period = await harness.get("/api/v1/reports/companies", params=PERIOD)
    assert period.json()["items"] == company_items(world)


async def test_a_guard_who_leaves_gets_a_left_on_date_cleared_on_return(world: World) -> None:
    for guard, left_on in [("gus", "2026-03-02"), ("ivy", "2026-03-20"), ("kai", None)]:
        got = await world.harness.get(f"/api/v1/guards/{world[guard]}")
        assert got.status_code == 200, got.text
        assert got.json()["left_on"] == left_on, guard


# Bad input and who may read --------------------------------------------------------------


async def test_bad_input_is_422_naming_the_field_and_changes_nothing(world: World) -> None:
    before = await response_report(world, group_by="station")
    cases = [
        ("/api/v1/reports/response", {"group_by": "guard", "from": "2026-03-04"}, "from"),
        ("/api/v1/reports/response", {"group_by": "guard", "from": "2026-02-30"}, "from"),
        ("/api/v1/reports/response", {"group_by": "guard", "to": "03/03/2026"}, "to"),
        ("/api/v1/reports/response", {"group_by": "week"}, "group_by"),
        ("/api/v1/reports/response/distribution", {"measure": "speed"}, "measure"),
        ("/api/v1/reports/response/distribution", {"measure": "accept_s", "to": "x"}, "to"),
        ("/api/v1/reports/companies", {"from": "2026-03-04"}, "from"),
        ("/api/v1/reports/companies", {"to": "2026-3-3"}, "to"),
    ]
    for path, params, field_name in cases:
        got = await world.harness.get(path, params={**PERIOD, **params})
        error = assert_error(got, 422, "validation_error")
        assert field_name in error["message"], (path, params, error)
    assert await response_report(world, group_by="station") == before


async def test_a_company_manager_sees_only_their_own_company(world: World) -> None:
    client, manager = world.harness.client, world.manager

    async def read(path: str, **params: Any) -> dict[str, Any]:
        got = await client.get(path, params={**PERIOD, **params}, headers=manager)
        assert got.status_code == 200, got.text
        return dict(got.json())

    rows = company_rows(world)
    for params in ({}, {"company_id": world["bravo"]}):  # a filter is forced to their own
        body = await read("/api/v1/reports/response", group_by="company", **params)
        assert body["items"] == [rows["alpha"]]
        assert body["total"] == as_total(rows["alpha"])
    guards = await read("/api/v1/reports/response", group_by="guard")
    assert guards["items"] == [guard_rows(world)["ann"], guard_rows(world)["bo"]]
    stations = await read("/api/v1/reports/response", group_by="station")
    assert stations["items"] == alpha_station_rows(world)
    gained = await read("/api/v1/reports/response/distribution", measure="minutes_gained")
    assert gained["buckets"] == buckets(MINUTE_EDGES, {0: 1, 2: 1, 10: 1})  # I2 0, I5 3, I1 10
    companies = await read("/api/v1/reports/companies")
    assert companies["items"] == company_items(world)[:1]


async def test_reports_need_reports_read(world: World) -> None:
    harness = world.harness
    for path, params in [
        ("/api/v1/reports/response", {"group_by": "guard"}),
        ("/api/v1/reports/response/distribution", {"measure": "accept_s"}),
        ("/api/v1/reports/companies", {}),
    ]:
        refused = await harness.get(path, params={**PERIOD, **params}, role="operator")
        assert_error(refused, 403, "forbidden")
        allowed = await harness.get(path, params={**PERIOD, **params}, role="supervisor")
        assert allowed.status_code == 200, allowed.text
    key = await harness.api_key(["reports:read"])
    by_key = await harness.client.get(
        "/api/v1/reports/response",
        params={**PERIOD, "group_by": "company"},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert by_key.status_code == 200, by_key.text
    assert by_key.json()["items"] == list(company_rows(world).values())
