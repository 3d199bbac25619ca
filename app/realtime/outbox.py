"""Per-guard outbox: frames that matter get a sequence number and wait for the guard's ack.

A frame is written in the same transaction as the state change that caused it, pushed
to the guard's socket after commit, and replayed in order on reconnect until acked.
Acks are cumulative: `ack {seq: n}` acknowledges every frame up to n.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import after_commit
from app.models import GuardChannel, GuardMessage

if TYPE_CHECKING:
    from app.context import AppContext


async def enqueue(
    session: AsyncSession, ctx: AppContext, guard_id: str, frame: dict[str, Any]
) -> int:
    """Store `frame` for the guard with the next sequence number; deliver after commit."""
    insert = postgresql.insert if session.bind.dialect.name == "postgresql" else sqlite.insert
    stmt = (
        insert(GuardChannel)
        .values(guard_id=guard_id, last_seq=1, acked_seq=0)
        .on_conflict_do_update(
            index_elements=["guard_id"], set_={"last_seq": GuardChannel.last_seq + 1}
        )
        .returning(GuardChannel.last_seq)
    )
    seq = int((await session.execute(stmt)).scalar_one())
    stored = {**frame, "seq": seq}
    session.add(GuardMessage(guard_id=guard_id, seq=seq, frame=stored, created_at=ctx.clock.now()))
    hub = ctx.hub
    after_commit(session, lambda: hub.deliver(guard_id, seq, stored))
    return seq


async def acknowledge(session: AsyncSession, guard_id: str, seq: int) -> None:
    """Cumulative ack; never moves backwards and never past what was handed out."""
    await session.execute(
        update(GuardChannel)
        .where(
            GuardChannel.guard_id == guard_id,
            GuardChannel.acked_seq < seq,
        )
        .values(
            acked_seq=func.min(seq, GuardChannel.last_seq)
            if session.bind.dialect.name == "sqlite"
            else func.least(seq, GuardChannel.last_seq)
        )
    )


async def channel_state(session: AsyncSession, guard_id: str) -> tuple[int, int]:
    """(last_seq, acked_seq) for the guard; (0, 0) before its first message."""
    row = (
        await session.execute(
            select(GuardChannel.last_seq, GuardChannel.acked_seq).where(
                GuardChannel.guard_id == guard_id
            )
        )
    ).first()
    return (int(row[0]), int(row[1])) if row else (0, 0)


async def pending(
    session: AsyncSession, guard_id: str, after_seq: int, limit: int
) -> tuple[int, list[dict[str, Any]]]:
    """(acked_seq, up to `limit` unacknowledged frames with seq > after_seq, in order)."""
    _, acked = await channel_state(session, guard_id)
    rows = await session.scalars(
        select(GuardMessage.frame)
        .where(GuardMessage.guard_id == guard_id, GuardMessage.seq > max(after_seq, acked))
        .order_by(GuardMessage.seq)
        .limit(limit)
    )
    return acked, list(rows.all())


async def prune(session: AsyncSession, older_than: dt.datetime) -> int:
    """Drop acknowledged frames older than the cutoff (unacknowledged ones are kept)."""
    acked = (
        select(GuardChannel.acked_seq)
        .where(GuardChannel.guard_id == GuardMessage.guard_id)
        .scalar_subquery()
    )
    result = await session.execute(
        delete(GuardMessage).where(GuardMessage.created_at < older_than, GuardMessage.seq <= acked)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
