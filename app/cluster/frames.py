"""Guard frames stored by another replica, read back for the sockets held here.

A frame is stored with the guard's next seq in the transaction that caused it; the
replica that stored it pushes it to the guard's socket if the socket is there, and
otherwise sends `g guard:seq` by NOTIFY. The replica holding the socket then reads the
frames back from the database (app/realtime/guard_link.py), in order. A lost
notification is caught by `sweep`: after every relay reconnect and every SWEEP_S, each
local socket compares the guard's stored last seq with what it has sent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from sqlalchemy import select

from app.cluster.relay import Relay
from app.models import GuardChannel

if TYPE_CHECKING:
    from app.context import AppContext

log = logging.getLogger(__name__)

KIND = "g"
SWEEP_S = 5.0
SWEEP_CHUNK = 5000


def forward_to(relay: Relay) -> Callable[[str, int], None]:
    """The hub's `elsewhere`: a frame for a guard with no socket here."""

    def forward(guard_id: str, seq: int) -> None:
        relay.send(KIND, f"{guard_id}:{seq}", key=guard_id)

    return forward


def heard(ctx: AppContext, items: list[str]) -> None:
    """Relay handler: frames up to seq were stored for these guards."""
    for item in items:
        guard_id, _, seq = item.rpartition(":")
        if guard_id and seq.isdigit():
            ctx.hub.nudge(guard_id, int(seq))


async def sweep(ctx: AppContext) -> int:
    """Nudge every local socket whose guard has frames stored beyond what it has sent."""
    links = {link.guard_id: link for link in ctx.hub.guard_links()}
    ids = sorted(links)
    nudged = 0
    for start in range(0, len(ids), SWEEP_CHUNK):
        chunk = ids[start : start + SWEEP_CHUNK]
        async with ctx.db.transaction(readonly=True) as session:
            rows = (
                await session.execute(
                    select(GuardChannel.guard_id, GuardChannel.last_seq).where(
                        GuardChannel.guard_id.in_(chunk)
                    )
                )
            ).all()
        for guard_id, last_seq in rows:
            link = ctx.hub.guard_link(guard_id)
            if link is not None:
                link.nudge(int(last_seq))
                nudged += 1
    return nudged


async def sweep_loop(ctx: AppContext, wake: asyncio.Event) -> None:
    """`sweep` every SWEEP_S, and at once when `wake` is set (the relay reconnected)."""
    while True:
        try:
            async with asyncio.timeout(SWEEP_S):
                await wake.wait()
        except TimeoutError:
            pass
        wake.clear()
        try:
            await sweep(ctx)
        except Exception:
            log.warning("guard frame sweep failed", exc_info=True)
