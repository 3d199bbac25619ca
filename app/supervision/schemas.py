"""Report, points and feedback bodies as the API declares them."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from app.schemas import Input, ObjectId, Output, UtcDateTime

GroupBy = Literal["guard", "company", "station", "day"]
Measure = Literal["accept_s", "on_scene_s", "minutes_gained"]
FeedbackText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)
]


class ResponseRow(Output):
    """One row of the response report (definitions: README, "Reports")."""

    key: str | None
    name: str
    incidents: int
    offers: int
    accepted: int
    declines: int
    expiries: int
    acceptance_rate: float | None
    accept_s_p50: float | None
    accept_s_p90: float | None
    on_scene_s_p50: float | None
    on_scene_s_p90: float | None
    early_disposals: int
    minutes_gained_p50: float | None
    minutes_gained_total: float
    escalations: int
    handovers: int


class ResponseReport(Output):
    group_by: GroupBy
    from_: dt.date = Field(alias="from")
    to: dt.date
    timezone: str
    items: list[ResponseRow]
    total: ResponseRow


class Bucket(Output):
    lower: float
    upper: float | None
    count: int


class Distribution(Output):
    measure: Measure
    unit: Literal["s", "min"]
    from_: dt.date = Field(alias="from")
    to: dt.date
    buckets: list[Bucket]


class GuardCounts(Output):
    active: int
    suspended: int
    left: int


class Turnover(Output):
    departures: int
    headcount_start: int
    headcount_end: int
    average_headcount: float
    rate: float | None


class CompanyReport(Output):
    id: str
    name: str
    licence_no: str
    status: str
    licence_expires_on: dt.date
    licence_days_left: int
    licence_state: Literal["valid", "expiring", "expired"]
    guards: GuardCounts
    certificates_expiring: int
    certificates_expired: int
    turnover: Turnover
    kpis: ResponseRow
    commendations: int
    complaints: int
    points: int


class CompaniesReport(Output):
    from_: dt.date = Field(alias="from")
    to: dt.date
    today: dt.date
    items: list[CompanyReport]


class PointAwardOut(Output):
    id: str
    guard_id: str
    company_id: str
    station_id: str | None
    incident_id: str | None
    rule: str
    points: int
    reason: str
    at: UtcDateTime


class PointsPage(Output):
    guard_id: str
    total: int
    period_total: int
    items: list[PointAwardOut]
    next_cursor: str | None


class LeaderboardEntry(Output):
    rank: int
    guard_id: str
    name: str
    company_id: str
    company_name: str
    points: int
    awards: int


class Leaderboard(Output):
    from_: dt.date = Field(alias="from")
    to: dt.date
    items: list[LeaderboardEntry]


class FeedbackCreate(Input):
    guard_id: ObjectId
    text: FeedbackText


class FeedbackOut(Output):
    id: str
    incident_id: str
    guard_id: str
    company_id: str
    kind: Literal["commendation", "complaint"]
    text: str
    created_by: str
    created_at: UtcDateTime
