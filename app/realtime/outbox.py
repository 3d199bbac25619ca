"""Per-guard outbox: frames that matter get a sequence number and wait for the guard's ack.

A frame is written in the same transaction as the state change that caused it, pushed
to the guard's socket after commit, and replayed in order on reconnect until acked.
Acks are cumulative: `ack {seq: n}` acknowledges every frame up to n.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Table, delete, func, select, update
from sqlalchemy import insert as sa_insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import after_commit
from app.models import GuardChannel, GuardMessage

if TYPE_CHECKING:
    from app.context import AppContext

log = logging.getLogger(__name__)

_CHANNELS = cast(Table, GuardChannel.__table__)
_MESSAGES = cast(Table, GuardMessage.__table__)


def _bump(insert: Callable[[Table], Any]) -> Any:
    """Each guard's next sequence number (a channel starts at 1)."""
    return (
        insert(_CHANNELS)
        .on_conflict_do_update(
            index_elements=["guard_id"], set_={"last_seq": _CHANNELS.c.last_seq + 1}
        )
        .returning(_CHANNELS.c.guard_id, _CHANNELS.c.last_seq)
    )


# [SQLite, PostgreSQL]; executemany with RETURNING goes as one INSERT … VALUES (…), (…).
_BUMP = (_bump(sqlite.insert), _bump(postgresql.insert))
_INSERT_MESSAGE = sa_insert(_MESSAGES)


async def enqueue(
    session: AsyncSession, ctx: AppContext, guard_id: str, frame: dict[str, Any]
) -> int:
    """Store `frame` for the guard with the next sequence number; deliver after commit."""
    return (await enqueue_many(session, ctx, [(guard_id, frame)]))[0]


async def enqueue_many(
    session: AsyncSession, ctx: AppContext, frames: Sequence[tuple[str, dict[str, Any]]]
) -> list[int]:
    """Store one frame each for distinct guards, each with its guard's next sequence
    number: one upsert of the channels, one insert of the frames. Delivered after commit.
    Returns the sequence numbers in the order given."""
    if not frames:
        return []
    guard_ids = [guard_id for guard_id, _ in frames]
    if len(set(guard_ids)) != len(guard_ids):  # a guard's seqs would need one row each
        return [await enqueue(session, ctx, guard_id, frame) for guard_id, frame in frames]
    connection = await session.connection()
    postgres = connection.dialect.name == "postgresql"
    bumped = await connection.execute(
        _BUMP[postgres],
        # In guard order, so concurrent writers lock channels in one order (no deadlock).
        [{"guard_id": guard_id, "last_seq": 1, "acked_seq": 0} for guard_id in sorted(guard_ids)],
    )
    seqs = {guard_id: int(seq) for guard_id, seq in bumped.all()}
    now = ctx.clock.now()
    stored = [
        (guard_id, seqs[guard_id], {**frame, "seq": seqs[guard_id]}) for guard_id, frame in frames
    ]
    await connection.execute(
        _INSERT_MESSAGE,
        [
            {"guard_id": guard_id, "seq": seq, "frame": frame, "created_at": now}
            for guard_id, seq, frame in stored
        ],
    )
    hub = ctx.hub

    def deliver() -> None:
        for guard_id, seq, frame in stored:
            try:
                hub.deliver(guard_id, seq, frame)
            except Exception:  # one guard's socket must not keep the frame from the others
                log.exception("delivering seq %s to %s failed", seq, guard_id)

    after_commit(session, deliver)
    return [seq for _, seq, _ in stored]


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
            if session.get_bind().dialect.name == "sqlite"
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
