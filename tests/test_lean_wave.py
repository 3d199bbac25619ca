"""A wave is written as one multi-row statement per table; the claims still decide who is
offered, and every offer gets its timer, its frame and its event, in rank order."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import delete, event, select

from app.dispatch.engine import OFFER_EXPIRY
from app.models import GuardEngagement, GuardMessage, Offer, Timer
from tests.harness import Harness
from tests.phones import guard_at, offset
from tests.test_dispatch_flow import timeline

pytestmark = pytest.mark.usefixtures("backend")


async def test_a_guard_the_database_holds_elsewhere_is_skipped_and_the_next_is_offered(
    harness: Harness, area: tuple[float, float]
) -> None:
    held = await guard_at(harness, offset(area, north_m=100))
    others = [await guard_at(harness, offset(area, north_m=m)) for m in (200, 300, 400)]
    # Another incident holds the nearest guard in the database, though the live index has
    # not heard of it yet: the claim, not the index, decides.
    elsewhere = await harness.make_incident(offset(area, north_m=90_000), priority=4)
    async with harness.ctx.db.transaction() as session:
        session.add(
            GuardEngagement(
                guard_id=held.id,
                incident_id=elsewhere["id"],
                kind="offer",
                ref_id="off_held_elsewhere",
                since=harness.now(),
            )
        )

    incident = await harness.make_incident(area, category="theft", priority=3)
    frames = {p.id: await p.expect("offer") for p in others}
    await held.quiet("offer")

    async with harness.ctx.db.transaction(readonly=True) as session:
        offers = (
            await session.scalars(
                select(Offer).where(Offer.incident_id == incident["id"]).order_by(Offer.rank)
            )
        ).all()
        timers = set(
            (
                await session.scalars(
                    select(Timer.subject_id).where(
                        Timer.kind == OFFER_EXPIRY, Timer.subject_id.in_([o.id for o in offers])
                    )
                )
            ).all()
        )
        stored = {
            guard_id: frame
            for guard_id, frame in (
                await session.execute(
                    select(GuardMessage.guard_id, GuardMessage.frame).where(
                        GuardMessage.guard_id.in_([p.id for p in others])
                    )
                )
            ).all()
            if frame.get("type") == "offer"
        }
    assert [o.guard_id for o in offers] == [p.id for p in others]
    assert [o.rank for o in offers] == [1, 2, 3]
    assert timers == {o.id for o in offers}
    for offer in offers:
        assert frames[offer.guard_id]["offer_id"] == offer.id
        assert stored[offer.guard_id]["seq"] == frames[offer.guard_id]["seq"]

    events = await timeline(harness, incident["id"])
    sent = [e for e in events if e["type"] == "offer.sent"]
    assert [e["data"]["offer_id"] for e in sent] == [o.id for o in offers]
    assert [e["data"]["rank"] for e in sent] == [1, 2, 3]
    ids = [int(e["id"]) for e in events]
    assert ids == sorted(ids)
    wave = next(e for e in events if e["type"] == "dispatch.wave")
    assert int(wave["id"]) > int(sent[-1]["id"])
    assert wave["data"]["offered"] == [p.id for p in others]

    async with harness.ctx.db.transaction() as session:
        await session.execute(delete(GuardEngagement).where(GuardEngagement.guard_id == held.id))


async def test_a_wave_writes_each_table_once(harness: Harness, area: tuple[float, float]) -> None:
    """One INSERT per table for a wave of three: claims, offers, timers, channels, frames,
    events (plus the incident's own statements), however many guards are offered."""
    for m in (100, 200, 300):
        await guard_at(harness, offset(area, north_m=m))
    statements: list[str] = []

    def count(*args: Any) -> None:  # before_cursor_execute(conn, cursor, statement, …)
        statements.append(args[2].split("(")[0].strip())

    engine = harness.ctx.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        await harness.make_incident(area, category="theft", priority=3)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    inserts = [s for s in statements if s.startswith("INSERT INTO")]
    for table in ("guard_engagements", "offers", "timers", "guard_channels", "guard_messages"):
        assert inserts.count(f"INSERT INTO {table}") == 1, (table, inserts)
