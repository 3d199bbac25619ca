"""The response report: how fast guards answered and arrived, and how much earlier than the
police, per guard, company, station or local day.

Every figure is computed in the database from offers, assignments, escalations and
incidents (the event log's state, already in tables), so a report over a million events
moves a few hundred rows, not the samples. The definitions are in the README ("Reports").
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    Subquery,
    and_,
    case,
    func,
    literal_column,
    null,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import (
    Assignment,
    Escalation,
    Guard,
    Incident,
    Offer,
    PoliceStation,
    SecurityCompany,
)
from app.models.status import OfferOutcome
from app.supervision.period import Period
from app.supervision.stats import TOTAL, percentiles, seconds_between, settle_for_reports

GROUPS = ("guard", "company", "station", "day")
MEASURES = {"accept_s": "s", "on_scene_s": "s", "minutes_gained": "min"}
FIELDS = (
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
)
NO_STATION = "No station"
NO_STATION_KEY = ""  # in the queries; `null` in the report
_OUTCOMES = (
    ("accepted", OfferOutcome.ACCEPTED),
    ("declined", OfferOutcome.DECLINED),
    ("expired", OfferOutcome.EXPIRED),
)
TOTAL_KEY: ColumnElement[str] = literal_column(f"'{TOTAL}'")


@dataclass(frozen=True)
class Scope:
    """What a report covers: the period, the grouping and the filters."""

    period: Period
    group_by: str = "station"
    company_id: str | None = None
    station_id: str | None = None
    guard_id: str | None = None

    @property
    def by_participation(self) -> bool:
        """Rows count only their own guards' offers and assignments (see README)."""
        return self.group_by in ("guard", "company") or bool(self.company_id or self.guard_id)

    @property
    def needs_company(self) -> bool:
        return self.group_by == "company" or self.company_id is not None


class _Sources:
    """The rows a report reads, each with the row's key: offers, assignments, incidents."""

    def __init__(self, scope: Scope, dialect: str) -> None:
        self.scope = scope
        self.dialect = dialect

    def _where(self, stmt: Select[Any], guard_column: Any | None) -> Select[Any]:
        scope = self.scope
        stmt = stmt.where(
            Incident.created_at >= scope.period.start,
            Incident.created_at < scope.period.end,
            Incident.exercise.is_(False),
        )
        if scope.station_id:
            stmt = stmt.where(Incident.station_id == scope.station_id)
        if guard_column is not None and scope.by_participation:
            if scope.needs_company:
                stmt = stmt.join(Guard, Guard.id == guard_column)
            if scope.company_id:
                stmt = stmt.where(Guard.company_id == scope.company_id)
            if scope.guard_id:
                stmt = stmt.where(guard_column == scope.guard_id)
        return stmt

    def offers(self) -> Subquery:
        stmt = select(
            _key(self.scope, Offer.guard_id).label("key"),
            Offer.incident_id.label("iid"),
            Offer.outcome,
            Offer.offered_at,
            Offer.responded_at,
        ).join(Incident, Incident.id == Offer.incident_id)
        return self._where(stmt, Offer.guard_id).subquery("o")

    def assignments(self) -> Subquery:
        stmt = select(
            _key(self.scope, Assignment.guard_id).label("key"),
            Assignment.incident_id.label("iid"),
            Assignment.on_scene_at,
            Assignment.source,
            Incident.created_at,
        ).join(Incident, Incident.id == Assignment.incident_id)
        return self._where(stmt, Assignment.guard_id).subquery("a")

    def incidents(self) -> Subquery:
        stmt = select(_key(self.scope, None).label("key"), Incident.id.label("iid"))
        return self._where(stmt, None).subquery("i")

    def facts(self) -> Select[Any]:
        """One row per (key, incident): offer counts, worked (a guard of the row assigned)
        and the row's first guard on scene."""
        o, a = self.offers(), self.assignments()
        outcome = {
            name: func.sum(_flag(o.c.outcome == value)).label(name) for name, value in _OUTCOMES
        }
        if self.scope.by_participation:
            zero: ColumnElement[int] = literal_column("0")
            one: ColumnElement[int] = literal_column("1")
            # Rows, not groups, on each side: one grouping of the union does it all.
            offered = select(
                o.c.key, o.c.iid, one.label("offers"),
                *(_flag(o.c.outcome == value).label(name) for name, value in _OUTCOMES),
                zero.label("worked"), null().label("first"),
            )  # fmt: skip
            assigned = select(a.c.key, a.c.iid, zero, zero, zero, zero, one, a.c.on_scene_at)
            u = union_all(offered, assigned).subquery("u")
            return select(
                u.c.key,
                u.c.iid,
                func.sum(u.c.offers).label("offers"),
                func.sum(u.c.accepted).label("accepted"),
                func.sum(u.c.declined).label("declined"),
                func.sum(u.c.expired).label("expired"),
                func.max(u.c.worked).label("worked"),
                func.min(u.c.first).label("first"),
            ).group_by(u.c.key, u.c.iid)
        i = self.incidents()
        per_offer = select(o.c.iid, func.count().label("offers"), *outcome.values()).group_by(
            o.c.iid
        )
        po = per_offer.subquery("po")
        pa = (
            select(a.c.iid, func.min(a.c.on_scene_at).label("first"))
            .group_by(a.c.iid)
            .subquery("pa")
        )
        return (
            select(
                i.c.key,
                i.c.iid,
                func.coalesce(po.c.offers, 0).label("offers"),
                func.coalesce(po.c.accepted, 0).label("accepted"),
                func.coalesce(po.c.declined, 0).label("declined"),
                func.coalesce(po.c.expired, 0).label("expired"),
                literal_column("1").label("worked"),
                pa.c.first,
            )
            .outerjoin(po, po.c.iid == i.c.iid)
            .outerjoin(pa, pa.c.iid == i.c.iid)
        )

    def _judged(self) -> Select[Any]:
        """Per (key, incident) and per incident under TOTAL_KEY: the facts with the
        incident's resolution, police arrival and handover, and the seconds gained."""
        fk = self.facts().cte("fk")
        f = union_all(
            select(fk),
            select(
                TOTAL_KEY,
                fk.c.iid,
                func.sum(fk.c.offers),
                func.sum(fk.c.accepted),
                func.sum(fk.c.declined),
                func.sum(fk.c.expired),
                func.max(fk.c.worked),
                func.min(fk.c.first),
            ).group_by(fk.c.iid),
        ).subquery("f")
        police = (
            select(
                Escalation.incident_id.label("iid"),
                func.min(Escalation.police_on_scene_at).label("police_at"),
                func.max(Escalation.handed_over_at).label("handed_at"),
            )
            .group_by(Escalation.incident_id)
            .subquery("p")
        )
        worked = f.c.worked == 1
        lead = seconds_between(self.dialect, police.c.police_at, f.c.first)
        both = and_(worked, f.c.first.is_not(None), police.c.police_at.is_not(None))
        early = and_(
            worked,
            Incident.resolved_at.is_not(None),
            f.c.first.is_not(None),
            (police.c.police_at.is_(None)) | (f.c.first < police.c.police_at),
        )
        return (
            select(
                f.c.key,
                f.c.offers,
                f.c.accepted,
                f.c.declined,
                f.c.expired,
                _flag(early).label("early"),
                _flag(and_(worked, police.c.iid.is_not(None))).label("escalated"),
                _flag(and_(worked, police.c.handed_at.is_not(None))).label("handed"),
                case((both, case((lead > 0, lead), else_=0.0)), else_=None).label("gained"),
            )
            .select_from(f)
            .join(Incident, Incident.id == f.c.iid)
            .outerjoin(police, police.c.iid == f.c.iid)
        )

    def outcomes(self) -> Select[Any]:
        """The per-key summary and the total (under TOTAL_KEY), minutes gained's median
        with them: one statement, the facts built once. Only the incidents with minutes
        gained are ranked (a sort of a few, not of every row)."""
        x = self._judged().cte("x")
        summary = (
            select(
                x.c.key,
                func.count().label("incidents"),
                func.sum(x.c.offers).label("offers"),
                func.sum(x.c.accepted).label("accepted"),
                func.sum(x.c.declined).label("declines"),
                func.sum(x.c.expired).label("expiries"),
                func.sum(x.c.early).label("early_disposals"),
                func.sum(x.c.escalated).label("escalations"),
                func.sum(x.c.handed).label("handovers"),
                func.sum(x.c.gained).label("gained_s"),
            )
            .group_by(x.c.key)
            .subquery("summary")
        )
        ranked = (
            select(
                x.c.key,
                x.c.gained,
                func.row_number().over(partition_by=x.c.key, order_by=x.c.gained).label("rn"),
                func.count().over(partition_by=x.c.key).label("n"),
            )
            .where(x.c.gained.is_not(None))
            .subquery("ranked")
        )
        median = (
            select(ranked.c.key, ranked.c.gained.label("gained_p50_s"))
            .where(ranked.c.rn == (ranked.c.n + 1) // 2)
            .subquery("median")
        )
        # Keys are never null (see _key), so this is an equality join SQLite can index.
        return select(summary, median.c.gained_p50_s).outerjoin(
            median, median.c.key == summary.c.key
        )

    def minutes_samples(self) -> Select[Any]:
        x = self._judged().subquery("x")
        return select(x.c.key, (x.c.gained / 60.0).label("value")).where(
            x.c.gained.is_not(None), x.c.key == TOTAL_KEY
        )

    def accept_samples(self) -> Select[Any]:
        o = self.offers()
        return select(
            o.c.key, seconds_between(self.dialect, o.c.responded_at, o.c.offered_at).label("value")
        ).where(o.c.outcome == OfferOutcome.ACCEPTED, o.c.responded_at.is_not(None))

    def on_scene_samples(self) -> Select[Any]:
        a = self.assignments()
        return select(
            a.c.key, seconds_between(self.dialect, a.c.on_scene_at, a.c.created_at).label("value")
        ).where(a.c.on_scene_at.is_not(None), a.c.source != "report")

    def samples(self, measure: str) -> Select[Any]:
        if measure == "accept_s":
            return self.accept_samples()
        if measure == "on_scene_s":
            return self.on_scene_samples()
        return self.minutes_samples()


def _key(scope: Scope, guard_column: Any) -> Any:
    """The row a source row belongs to; a guard's own id is on the offer or assignment."""
    if scope.group_by == "guard":
        return guard_column
    if scope.group_by == "company":
        return Guard.company_id
    if scope.group_by == "station":
        return func.coalesce(Incident.station_id, NO_STATION_KEY)
    return _day_of(scope.period)


def _day_of(period: Period) -> ColumnElement[Any]:
    """The local day an incident was created on, as 'YYYY-MM-DD' (DST-correct: compared
    with each day's UTC start, not shifted by one offset)."""
    days = period.days
    whens = [
        (Incident.created_at < period.day_start(day + dt.timedelta(days=1)), day.isoformat())
        for day in days[:-1]
    ]
    last = days[-1].isoformat()
    return case(*whens, else_=last) if whens else literal_column(f"'{last}'")


async def _figures(session: AsyncSession, scope: Scope) -> dict[Any, dict[str, Any]]:
    """Rows by key, and the total under TOTAL_KEY: three statements."""
    sources = _Sources(scope, session.get_bind().dialect.name)
    accept = await percentiles(session, sources.accept_samples())
    on_scene = await percentiles(session, sources.on_scene_samples())
    rows: dict[Any, dict[str, Any]] = {}
    for found in (await session.execute(sources.outcomes())).mappings():
        key = found["key"]
        rows[key] = _row(dict(found), accept.get(key), on_scene.get(key))
    return rows


def _flag(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return case((condition, 1), else_=0)


def _row(
    found: dict[str, Any],
    accept: tuple[float, float] | None,
    on_scene: tuple[float, float] | None,
) -> dict[str, Any]:
    accepted, declines, expiries = (
        int(found.get(k) or 0) for k in ("accepted", "declines", "expiries")
    )
    answered = accepted + declines + expiries
    return {
        "incidents": int(found.get("incidents") or 0),
        "offers": int(found.get("offers") or 0),
        "accepted": accepted,
        "declines": declines,
        "expiries": expiries,
        "acceptance_rate": round(accepted / answered, 4) if answered else None,
        "accept_s_p50": _tenth(accept, 0),
        "accept_s_p90": _tenth(accept, 1),
        "on_scene_s_p50": _tenth(on_scene, 0),
        "on_scene_s_p90": _tenth(on_scene, 1),
        "early_disposals": int(found.get("early_disposals") or 0),
        "minutes_gained_p50": _minutes(found.get("gained_p50_s")),
        "minutes_gained_total": round(float(found.get("gained_s") or 0) / 60.0, 2),
        "escalations": int(found.get("escalations") or 0),
        "handovers": int(found.get("handovers") or 0),
    }


def _tenth(pair: tuple[float, float] | None, index: int) -> float | None:
    return None if pair is None else round(pair[index], 1)


def _minutes(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 60.0, 2)


EMPTY = _row({}, None, None)


async def response_report(session: AsyncSession, scope: Scope) -> dict[str, Any]:
    """`{"items": [row…], "total": row}`; rows have FIELDS, in that order."""
    await settle_for_reports(session)
    grouped = await _figures(session, scope)
    total = grouped.pop(TOTAL, EMPTY)
    if scope.group_by == "day":
        items = [
            {"key": day.isoformat(), "name": day.isoformat(), **grouped.get(day.isoformat(), EMPTY)}
            for day in scope.period.days
        ]
    else:
        names = await _names(session, scope.group_by, [k for k in grouped if k])
        items = [
            {"key": key or None, "name": names.get(key, key) if key else NO_STATION, **figures}
            for key, figures in grouped.items()
        ]
        items.sort(key=lambda row: (row["name"] or "", row["key"] or ""))
    return {"items": items, "total": {"key": None, "name": "All", **total}}


async def _names(session: AsyncSession, group_by: str, keys: list[str]) -> dict[str, str]:
    model: Any = {"guard": Guard, "company": SecurityCompany, "station": PoliceStation}[group_by]
    if not keys:
        return {}
    rows = await session.execute(select(model.id, model.name).where(model.id.in_(keys)))
    return {key: name for key, name in rows}


BUCKETS = {
    "s": (0, 15, 30, 60, 120, 180, 300, 600, 900, 1800),
    "min": (0, 1, 2, 5, 10, 15, 20, 30, 60),
}


async def distribution(session: AsyncSession, scope: Scope, measure: str) -> dict[str, Any]:
    """How the measure's samples fall into fixed buckets (lower inclusive, upper exclusive)."""
    await settle_for_reports(session)
    unit = MEASURES[measure]
    edges = BUCKETS[unit]
    sources = _Sources(scope, session.get_bind().dialect.name)
    sub = sources.samples(measure).subquery()
    bucket = case(
        *[(sub.c.value < upper, index) for index, upper in enumerate(edges[1:])],
        else_=len(edges) - 1,
    )
    binned = select(bucket.label("bucket")).subquery()
    counts: dict[int, int] = {
        bucket_index: n
        for bucket_index, n in await session.execute(
            select(binned.c.bucket, func.count()).group_by(binned.c.bucket)
        )
    }
    return {
        "measure": measure,
        "unit": unit,
        "buckets": [
            {
                "lower": lower,
                "upper": edges[index + 1] if index + 1 < len(edges) else None,
                "count": int(counts.get(index, 0)),
            }
            for index, lower in enumerate(edges)
        ],
    }
