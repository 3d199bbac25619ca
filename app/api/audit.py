"""/api/v1/audit (the security audit log) and /api/v1/guards/{id}/track (a guard's location
history: every read of it is itself audited)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from sqlalchemy import select

from app.api.deps import Allow, CtxDep
from app.api.instants import utc
from app.api.pagination import DEFAULT_LIMIT, Cursor, Limit
from app.auth.principal import Principal
from app.clock import isoformat
from app.errors import NotFound, Unprocessable
from app.models import AuditRecord, Guard, PositionHistory
from app.paging import paginate
from app.realtime.positions_view import company_scope
from app.schemas import Instant, Output, Page, UtcDateTime

router = APIRouter()

MAX_TRACK_WINDOW = dt.timedelta(hours=24)
MAX_TRACK_POINTS = 10_000
TRACK_READ = "positions.track_read"


class AuditOut(Output):
    id: str
    at: UtcDateTime = Field(description="UTC, to 10 ms")
    type: str
    actor: str = Field(description="'user:usr_…', 'api_key:key_…', 'guard:grd_…', 'anonymous'")
    address: str | None = Field(description="the client's IP address")
    subject: str | None = Field(description="whom or what it concerns")
    data: dict[str, Any]
    hash: str | None = Field(description="its link in the hash chain; null until sealed (~1 s)")

    @classmethod
    def of(cls, record: AuditRecord) -> AuditOut:
        return cls(
            id=str(record.id),
            at=record.at,
            type=record.type,
            actor=record.actor,
            address=record.address,
            subject=record.subject,
            data=record.data,
            hash=record.chain_hash,
        )


@router.get("/audit", response_model=Page[AuditOut], tags=["audit"])
async def list_audit(
    principal: Annotated[Principal, Depends(Allow("audit:read"))],
    ctx: CtxDep,
    type: Annotated[
        str | None, Query(max_length=64, description="e.g. auth.sign_in_failed")
    ] = None,
    actor: Annotated[str | None, Query(max_length=80, description="e.g. user:usr_…")] = None,
    subject: Annotated[str | None, Query(max_length=200, description="e.g. guard:grd_…")] = None,
    since: Annotated[Instant | None, Query(description="at or after (UTC)")] = None,
    until: Annotated[Instant | None, Query(description="before (UTC)")] = None,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
) -> object:
    """Security events, newest first: sign-ins (and failures, lockouts), refused requests
    (403), user / API key / device token changes, reads of a guard's track."""
    since, until = utc(since, "since"), utc(until, "until")
    await ctx.audit.flush()  # what was queued a moment ago is in the answer
    query = select(AuditRecord)
    if type is not None:
        query = query.where(AuditRecord.type == type)
    if actor is not None:
        query = query.where(AuditRecord.actor == actor)
    if subject is not None:
        query = query.where(AuditRecord.subject == subject)
    if since is not None:
        query = query.where(AuditRecord.at >= since)
    if until is not None:
        query = query.where(AuditRecord.at < until)
    async with ctx.db.transaction(readonly=True) as session:
        items, next_cursor = await paginate(
            session, query, AuditRecord.id, cursor, limit, newest_first=True
        )
    return {"items": [AuditOut.of(r) for r in items], "next_cursor": next_cursor}


class TrackPoint(BaseModel):
    lat: float
    lon: float
    accuracy_m: float | None
    at: str = Field(description="ISO 8601 UTC: when the phone took the position")


class TrackOut(BaseModel):
    guard_id: str
    since: str
    until: str
    points: list[TrackPoint]
    truncated: bool = Field(description="more points in the window than `limit`")


@router.get("/guards/{guard_id}/track", response_model=TrackOut, tags=["registry"])
async def guard_track(
    principal: Annotated[Principal, Depends(Allow("guards:track"))],
    guard_id: str,
    ctx: CtxDep,
    since: Annotated[Instant, Query(description="start of the window (UTC)")],
    until: Annotated[
        Instant | None, Query(description="end of the window (UTC; default now)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_TRACK_POINTS)] = MAX_TRACK_POINTS,
) -> object:
    """Where the guard was, oldest first, within a window of at most 24 hours (history is
    kept for DISPATCH_POSITION_HISTORY_RETENTION_H, and only while on duty). Company
    managers see their own company's guards only. Every read is audited: who, whose
    track, which window."""
    start = utc(since, "since")
    end = utc(until, "until") or ctx.clock.now()
    assert start is not None
    if end <= start:
        raise Unprocessable("until", "must be after since")
    if end - start > MAX_TRACK_WINDOW:
        raise Unprocessable("since", "the window may span at most 24 hours")
    scope = company_scope(principal)
    # A write transaction: the audit record commits with the read, or nothing is shown.
    async with ctx.db.transaction(serial=False) as session:
        guard = await session.get(Guard, guard_id)
        if guard is None or (scope is not None and guard.company_id != scope):
            raise NotFound(f"guard '{guard_id}' not found")
        rows = (
            await session.execute(
                select(
                    PositionHistory.lat,
                    PositionHistory.lon,
                    PositionHistory.accuracy_m,
                    PositionHistory.located_at,
                )
                .where(
                    PositionHistory.guard_id == guard_id,
                    PositionHistory.located_at >= start,
                    PositionHistory.located_at < end,
                )
                .order_by(PositionHistory.located_at, PositionHistory.id)
                .limit(limit + 1)
            )
        ).all()
        truncated = len(rows) > limit
        rows = rows[:limit]
        await ctx.audit.record(
            session,
            TRACK_READ,
            actor=principal.actor,
            subject=f"guard:{guard_id}",
            data={
                "guard_id": guard_id,
                "since": isoformat(start),
                "until": isoformat(end),
                "points": len(rows),
            },
        )
    return {
        "guard_id": guard_id,
        "since": isoformat(start),
        "until": isoformat(end),
        "points": [
            {"lat": lat, "lon": lon, "accuracy_m": acc, "at": isoformat(at)}
            for lat, lon, acc, at in rows
        ],
        "truncated": truncated,
    }
