"""Small periodic loops: drop silent guard sockets, prune acknowledged and old data, write
queued audit records and seal the hash chains."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from typing import TYPE_CHECKING

from app.audit import chain
from app.realtime import outbox
from app.realtime.close_codes import CloseCode

if TYPE_CHECKING:
    from app.context import AppContext

log = logging.getLogger(__name__)

MESSAGE_RETENTION = dt.timedelta(hours=24)
PRUNE_FIRST_AFTER_S = 30.0  # a server restarted often still prunes
AUDIT_EVERY_S = 1.0


def sweep_idle(ctx: AppContext) -> int:
    """Close guard sockets that sent nothing for the idle timeout; returns how many."""
    cutoff = time.monotonic() - ctx.settings.ws_idle_timeout_s
    closed = 0
    for link in ctx.hub.guard_links():
        if link.last_frame_at < cutoff and link.closing is None:
            link.close(CloseCode.IDLE, "idle timeout: no frames received")
            closed += 1
    return closed


async def idle_loop(ctx: AppContext) -> None:
    interval = max(0.05, min(1.0, ctx.settings.ws_idle_timeout_s / 4))
    while True:
        await asyncio.sleep(interval)
        sweep_idle(ctx)


async def prune(ctx: AppContext) -> None:
    """One pruning pass: acknowledged guard messages, and position history older than
    DISPATCH_POSITION_HISTORY_RETENTION_H. Each part fails on its own."""
    try:
        async with ctx.db.transaction(serial=False) as session:
            await outbox.prune(session, ctx.clock.now() - MESSAGE_RETENTION)
    except Exception:
        log.exception("pruning guard messages failed; will retry")
    try:
        removed = await ctx.positions.prune_history()
        if removed:
            log.info("position history: %d rows past retention removed", removed)
    except Exception:
        log.exception("pruning position history failed; will retry")


async def prune_loop(
    ctx: AppContext, every_s: float = 600.0, first_after_s: float = PRUNE_FIRST_AFTER_S
) -> None:
    """Prune soon after start, then every `every_s` (retention is hours; 10 minutes late
    is nothing, never pruning because the server restarts every few minutes would be)."""
    await asyncio.sleep(first_after_s)
    while True:
        await prune(ctx)
        await asyncio.sleep(every_s)


async def audit_pass(ctx: AppContext) -> None:
    """Write queued audit records, then seal both chains up to their watermark."""
    await ctx.audit.flush()
    await chain.seal(ctx.db)


async def audit_loop(ctx: AppContext, every_s: float = AUDIT_EVERY_S) -> None:
    try:
        while True:
            await asyncio.sleep(every_s)
            try:
                await audit_pass(ctx)
            except Exception:
                log.exception("audit flush or chain sealing failed; will retry")
    finally:  # on shutdown: what is queued still goes in
        if ctx.audit.pending:
            try:
                await ctx.audit.flush()
            except Exception:
                log.exception("%d audit records not written at shutdown", ctx.audit.pending)
