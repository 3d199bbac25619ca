"""Broadcasts: created (and fanned out) in one transaction, queued per guard once, counted.

Each guard's copy is a `broadcast_recipients` row, inserted with ON CONFLICT DO NOTHING
before its outbox frame is written: whichever path reaches a guard first (the creation,
its socket opening, its ping inside the circle) writes the frame, every other path finds
the row and writes nothing. Delivered and acknowledged counts come from those rows and
the guard's channel (the outbox's cumulative ack).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Select, Table, and_, bindparam, case, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.principal import Principal
from app.broadcasts.schemas import MAX_LIFETIME, BroadcastCreate
from app.db import after_commit
from app.errors import Forbidden, NotFound, Unprocessable
from app.ids import new_id
from app.models import Broadcast, BroadcastRecipient, GuardChannel
from app.models.types import UTCDateTime
from app.paging import paginate
from app.realtime import outbox
from app.realtime.frames import broadcast_frame

if TYPE_CHECKING:
    from app.context import AppContext

_RECIPIENTS = cast(Table, BroadcastRecipient.__table__)
_SET_SEQ = (
    update(_RECIPIENTS)
    .where(
        _RECIPIENTS.c.broadcast_id == bindparam("b_id"),
        _RECIPIENTS.c.guard_id == bindparam("g_id"),
    )
    .values(seq=bindparam("b_seq"))
)
CHUNK = 1000  # recipients per INSERT (well under either database's parameter limit)


@dataclass(frozen=True, slots=True)
class Circle:
    """What the board keeps of an active broadcast: where, until when, and its frame."""

    id: str
    lat: float
    lon: float
    radius_m: float
    expires_at: float  # epoch seconds
    frame: dict[str, Any]

    @classmethod
    def of(cls, broadcast: Broadcast) -> Circle:
        frame = broadcast_frame(
            broadcast.id,
            broadcast.text,
            broadcast.sender,
            broadcast.location,
            broadcast.radius_m,
            broadcast.expires_at,
        )
        return cls(
            broadcast.id,
            broadcast.lat,
            broadcast.lon,
            broadcast.radius_m,
            broadcast.expires_at.timestamp(),
            frame,
        )


def check_expiry(expires_at: dt.datetime, now: dt.datetime) -> dt.datetime:
    """The expiry in UTC; 422 naming `expires_at` unless it is ahead and within the bound."""
    if expires_at.tzinfo is None:
        raise Unprocessable("expires_at", "must include a timezone (e.g. Z)")
    try:
        expires_at = expires_at.astimezone(dt.UTC)
    except OverflowError:
        raise Unprocessable("expires_at", "is out of range") from None
    if expires_at <= now:
        raise Unprocessable("expires_at", "must be in the future")
    if expires_at - now > MAX_LIFETIME:
        hours = int(MAX_LIFETIME.total_seconds() // 3600)
        raise Unprocessable("expires_at", f"must be within {hours} hours from now")
    return expires_at


async def create(
    session: AsyncSession, ctx: AppContext, principal: Principal, body: BroadcastCreate
) -> Broadcast:
    """Store the broadcast and queue it for every dispatchable guard inside the circle;
    guards busy, connecting or arriving later get it from the board (app.broadcasts.board)."""
    now = ctx.clock.now()
    expires_at = check_expiry(body.expires_at, now)
    lat, lon = body.location.lat, body.location.lon
    jurisdiction = ctx.jurisdictions.locate(lat, lon)
    station_id = jurisdiction.station_id if jurisdiction else None
    if principal.station_id is not None and station_id != principal.station_id:
        raise Forbidden(
            f"this credential is scoped to station '{principal.station_id}'; "
            "the circle's centre lies outside its jurisdiction"
        )
    broadcast = Broadcast(
        id=new_id("bcast"),
        text=body.text,
        lat=lat,
        lon=lon,
        radius_m=body.radius_m,
        expires_at=expires_at,
        station_id=station_id,
        sender=principal.name[:200],
        created_by=principal.actor,
        created_at=now,
    )
    session.add(broadcast)
    await session.flush()
    circle = Circle.of(broadcast)
    inside = ctx.live.within(lat, lon, radius_m=body.radius_m, now=now.timestamp())
    reached = await deliver(
        session, ctx, broadcast.id, circle.frame, [near.entry.guard_id for near in inside]
    )
    await ctx.events.record(
        session,
        type="broadcast.created",
        actor=principal.actor,
        at=now,
        station_id=station_id,
        data={
            "broadcast_id": broadcast.id,
            "text": broadcast.text,
            "location": broadcast.location,
            "radius_m": broadcast.radius_m,
            "expires_at": broadcast.expires_at.isoformat().replace("+00:00", "Z"),
            "from": broadcast.sender,
            "recipients": len(reached),
        },
    )
    board = ctx.broadcasts
    after_commit(session, lambda: board.add(circle, reached))
    return broadcast


async def deliver(
    session: AsyncSession,
    ctx: AppContext,
    broadcast_id: str,
    frame: dict[str, Any],
    guard_ids: Sequence[str],
) -> list[str]:
    """Queue the broadcast for those of these guards who do not have it yet; returns
    them. A guard already holding a copy (another path got there first) is skipped."""
    if not guard_ids:
        return []
    now = ctx.clock.now()
    connection = await session.connection()
    insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    won: list[str] = []
    for start in range(0, len(guard_ids), CHUNK):
        rows = [
            {"broadcast_id": broadcast_id, "guard_id": guard_id, "queued_at": now}
            for guard_id in guard_ids[start : start + CHUNK]
        ]
        inserted = await connection.execute(
            insert(_RECIPIENTS)
            .values(rows)
            .on_conflict_do_nothing()
            .returning(_RECIPIENTS.c.guard_id)
        )
        won += list(inserted.scalars())
    if not won:
        return []
    seqs = await outbox.enqueue_many(session, ctx, [(guard_id, frame) for guard_id in won])
    await connection.execute(
        _SET_SEQ,
        [
            {"b_id": broadcast_id, "g_id": guard_id, "b_seq": seq}
            for guard_id, seq in zip(won, seqs, strict=True)
        ],
    )
    return won


_MARK_DELIVERED = (
    update(_RECIPIENTS)
    .where(
        _RECIPIENTS.c.broadcast_id == bindparam("b_id"),
        _RECIPIENTS.c.guard_id == bindparam("g_id"),
        _RECIPIENTS.c.delivered_at.is_(None),
    )
    .values(delivered_at=bindparam("b_at", type_=UTCDateTime()))
)


async def mark_delivered(
    session: AsyncSession, marks: Sequence[tuple[str, str]], at: dt.datetime
) -> None:
    """Record when each (broadcast, guard) copy was first sent on a socket."""
    connection = await session.connection()
    await connection.execute(
        _MARK_DELIVERED,
        [{"b_id": broadcast_id, "g_id": guard_id, "b_at": at} for broadcast_id, guard_id in marks],
    )


def _not_found(broadcast_id: str) -> NotFound:
    return NotFound(f"broadcast '{broadcast_id}' not found")


async def counts(session: AsyncSession, broadcast_ids: Sequence[str]) -> dict[str, tuple[int, ...]]:
    """(recipients, delivered, acknowledged) per broadcast."""
    if not broadcast_ids:
        return {}
    acked = and_(
        BroadcastRecipient.seq.is_not(None), BroadcastRecipient.seq <= GuardChannel.acked_seq
    )
    rows = await session.execute(
        select(
            BroadcastRecipient.broadcast_id,
            func.count(),
            func.sum(case((or_(BroadcastRecipient.delivered_at.is_not(None), acked), 1), else_=0)),
            func.sum(case((acked, 1), else_=0)),
        )
        .select_from(BroadcastRecipient)
        .outerjoin(GuardChannel, GuardChannel.guard_id == BroadcastRecipient.guard_id)
        .where(BroadcastRecipient.broadcast_id.in_(broadcast_ids))
        .group_by(BroadcastRecipient.broadcast_id)
    )
    return {row[0]: (int(row[1]), int(row[2] or 0), int(row[3] or 0)) for row in rows}


def out(broadcast: Broadcast, tally: tuple[int, ...] | None, now: dt.datetime) -> dict[str, Any]:
    recipients, delivered, acknowledged = tally or (0, 0, 0)
    return {
        "id": broadcast.id,
        "text": broadcast.text,
        "location": broadcast.location,
        "radius_m": broadcast.radius_m,
        "expires_at": broadcast.expires_at,
        "active": broadcast.expires_at > now,
        "station_id": broadcast.station_id,
        "sender": broadcast.sender,
        "created_by": broadcast.created_by,
        "created_at": broadcast.created_at,
        "recipients": recipients,
        "delivered": delivered,
        "acknowledged": acknowledged,
    }


async def get(
    session: AsyncSession, ctx: AppContext, principal: Principal, broadcast_id: str
) -> dict[str, Any]:
    broadcast = await session.get(Broadcast, broadcast_id)
    if broadcast is None or principal.station_id not in (None, broadcast.station_id):
        raise _not_found(broadcast_id)
    tally = (await counts(session, [broadcast.id])).get(broadcast.id)
    return out(broadcast, tally, ctx.clock.now())


async def list_broadcasts(
    session: AsyncSession,
    ctx: AppContext,
    principal: Principal,
    *,
    station_id: str | None,
    active: bool | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[dict[str, Any]], str | None]:
    """Newest first; a station-scoped caller sees its station's broadcasts only."""
    if principal.station_id is not None:
        if station_id not in (None, principal.station_id):
            raise Forbidden(f"this credential is scoped to station '{principal.station_id}'")
        station_id = principal.station_id
    now = ctx.clock.now()
    stmt: Select[Any] = select(Broadcast)
    if station_id is not None:
        stmt = stmt.where(Broadcast.station_id == station_id)
    if active is True:
        stmt = stmt.where(Broadcast.expires_at > now)
    elif active is False:
        stmt = stmt.where(Broadcast.expires_at <= now)
    rows, next_cursor = await paginate(
        session, stmt, Broadcast.id, cursor, limit, newest_first=True
    )
    tallies = await counts(session, [row.id for row in rows])
    return [out(row, tallies.get(row.id), now) for row in rows], next_cursor
