"""/api/v1/reports: response reports, the regulator's view of companies, the leaderboard."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from app.api.deps import Allow, CtxDep, LongReadSessionDep
from app.auth.principal import Principal
from app.supervision import companies, ledger, response
from app.supervision.period import Period, local_today, period_of
from app.supervision.schemas import (
    CompaniesReport,
    Distribution,
    GroupBy,
    Leaderboard,
    Measure,
    ResponseReport,
)

router = APIRouter(prefix="/reports", tags=["reports"])
READ = Allow("reports:read")

From = Annotated[dt.date | None, Query(alias="from", description="first local day (YYYY-MM-DD)")]
To = Annotated[
    dt.date | None, Query(alias="to", description="last local day, inclusive (YYYY-MM-DD)")
]
Id = Annotated[str | None, Query(min_length=1, max_length=40)]
CSV_TYPE = "text/csv"
CSV_ANSWER: dict[int | str, dict[str, Any]] = {
    200: {"content": {CSV_TYPE: {"schema": {"type": "string"}}}}
}


def _period(ctx: CtxDep, first: From = None, last: To = None) -> Period:
    zone = ZoneInfo(ctx.settings.timezone)
    return period_of(first, last, now=ctx.clock.now(), zone=zone)


PeriodDep = Annotated[Period, Depends(_period)]


def own_company(principal: Principal, company_id: str | None) -> str | None:
    """A company manager's reports cover their own company, whatever they ask."""
    return principal.company_id if principal.role == "company_manager" else company_id


def _wants_csv(request: Request, format: str | None) -> bool:
    if format is not None:
        return format == "csv"
    return CSV_TYPE in request.headers.get("accept", "")


def _cell(value: object) -> object:
    """Empty for null; a name a spreadsheet would run as a formula is quoted (OWASP CSV
    injection: =, +, -, @, tab, carriage return)."""
    if value is None:
        return ""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _csv(rows: list[dict[str, Any]], filename: str) -> Response:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(response.FIELDS)
    for row in rows:
        writer.writerow([_cell(row[field]) for field in response.FIELDS])
    return Response(
        out.getvalue(),
        media_type=f"{CSV_TYPE}; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get("/response", response_model=ResponseReport, responses=CSV_ANSWER)
async def response_report(
    request: Request,
    principal: Annotated[Principal, Depends(READ)],
    session: LongReadSessionDep,
    ctx: CtxDep,
    period: PeriodDep,
    group_by: GroupBy = "station",
    company_id: Id = None,
    station_id: Id = None,
    guard_id: Id = None,
    format: Annotated[str | None, Query(pattern="^(json|csv)$")] = None,
) -> object:
    """Incidents, offers, acceptance, time to accept and to arrive, early disposals and the
    minutes guards gained before the police, per guard, company, station or local day.
    JSON, or CSV with `Accept: text/csv` or `format=csv`. Drills are left out."""
    scope = response.Scope(
        period,
        group_by,
        company_id=own_company(principal, company_id),
        station_id=principal.own_station(station_id),
        guard_id=guard_id,
    )
    report = await response.response_report(session, scope)
    if _wants_csv(request, format):
        name = f"response-{group_by}-{period.first.isoformat()}-{period.last.isoformat()}.csv"
        return _csv(report["items"], name)
    return {
        "group_by": group_by,
        "from": period.first,
        "to": period.last,
        "timezone": ctx.settings.timezone,
        **report,
    }


@router.get("/response/distribution", response_model=Distribution)
async def response_distribution(
    principal: Annotated[Principal, Depends(READ)],
    session: LongReadSessionDep,
    period: PeriodDep,
    measure: Measure = "on_scene_s",
    company_id: Id = None,
    station_id: Id = None,
    guard_id: Id = None,
) -> object:
    """How time to accept, time to on-scene or minutes gained are spread, in fixed buckets."""
    scope = response.Scope(
        period,
        "station",
        company_id=own_company(principal, company_id),
        station_id=principal.own_station(station_id),
        guard_id=guard_id,
    )
    found = await response.distribution(session, scope, measure)
    return {"from": period.first, "to": period.last, **found}


@router.get("/companies", response_model=CompaniesReport)
async def companies_report(
    principal: Annotated[Principal, Depends(READ)],
    session: LongReadSessionDep,
    ctx: CtxDep,
    period: PeriodDep,
) -> object:
    """The regulator's view: licences, guards, certificates, staff turnover, KPIs, police
    commendations and complaints, points — per company."""
    today = local_today(ctx.clock.now(), period.zone)
    items = await companies.companies_report(
        session,
        period,
        today,
        company_id=own_company(principal, None),
        station_id=principal.own_station(None),
    )
    return {"from": period.first, "to": period.last, "today": today, "items": items}


@router.get("/leaderboard", response_model=Leaderboard)
async def leaderboard(
    principal: Annotated[Principal, Depends(READ)],
    session: LongReadSessionDep,
    period: PeriodDep,
    company_id: Id = None,
    station_id: Id = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 10,
) -> object:
    """Guards by recognition points earned in the period, in a company or a station."""
    items = await ledger.leaderboard(
        session,
        period,
        company_id=own_company(principal, company_id),
        station_id=principal.own_station(station_id),
        limit=limit,
    )
    return {"from": period.first, "to": period.last, "items": items}
