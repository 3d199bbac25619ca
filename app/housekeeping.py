"""Small periodic loops: drop silent guard sockets, prune acknowledged and old data."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from typing import TYPE_CHECKING

from app.realtime import outbox
from app.realtime.close_codes import CloseCode

if TYPE_CHECKING:
    from app.context import AppContext

log = logging.getLogger(__name__)

MESSAGE_RETENTION = dt.timedelta(hours=24)


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


async def prune_loop(ctx: AppContext, every_s: float = 600.0) -> None:
    while True:
        await asyncio.sleep(every_s)
        try:
            async with ctx.db.transaction(serial=False) as session:
                await outbox.prune(session, ctx.clock.now() - MESSAGE_RETENTION)
            await ctx.positions.prune_history()
        except Exception:
            log.exception("pruning failed; will retry")
