"""The roster: which guards the live index holds, whether they may be dispatched, duty."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import after_commit
from app.dispatch import engagement, engine, offers
from app.dispatch.policy import travel_speed_mps
from app.errors import Conflict
from app.geo.live_index import GuardEntry
from app.models import Guard, GuardPresence, Incident, Offer, SecurityCompany

if TYPE_CHECKING:
    from app.context import AppContext


def _end_of_day(day: dt.date) -> float:
    """A certificate or licence is valid through its expiry date (UTC)."""
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), dt.UTC).timestamp()


def entry_for(guard: Guard, company: SecurityCompany) -> GuardEntry:
    """A fresh index entry carrying the guard's registry facts."""
    return GuardEntry(
        guard_id=guard.id,
        company_id=guard.company_id,
        skills=frozenset(guard.skills),
        speed_mps=travel_speed_mps(frozenset(guard.skills)),
        eligible=guard.status == "active" and company.status == "active",
        eligible_until=min(
            _end_of_day(guard.certificate_expires_on), _end_of_day(company.licence_expires_on)
        ),
    )


def refresh_guard(ctx: AppContext, guard: Guard, company: SecurityCompany) -> None:
    """After a registry change: replace the guard's facts, keep position and duty."""
    if ctx.live.get(guard.id) is not None:
        ctx.live.put(entry_for(guard, company))


async def load_guard(ctx: AppContext, guard_id: str) -> GuardEntry | None:
    """Make sure the index holds this guard (on connect); keeps live state if present."""
    async with ctx.db.transaction(readonly=True) as session:
        row = (
            await session.execute(
                select(Guard, SecurityCompany, GuardPresence)
                .join(SecurityCompany, SecurityCompany.id == Guard.company_id)
                .outerjoin(GuardPresence, GuardPresence.guard_id == Guard.id)
                .where(Guard.id == guard_id)
            )
        ).first()
        held = (await engagement.activities(session, [guard_id])).get(guard_id)
    if row is None:
        return None
    guard, company, presence = row
    existing = ctx.live.get(guard_id)
    entry = ctx.live.put(entry_for(guard, company))
    if existing is None:
        _restore(ctx, entry, presence, held)
    return entry


def _restore(
    ctx: AppContext,
    entry: GuardEntry,
    presence: GuardPresence | None,
    held: tuple[str, str] | None,
) -> None:
    """Position, duty and engagement (activity, incident id) as the database has them."""
    activity, incident_id = held if held is not None else (None, None)
    ctx.live.engage(entry, activity, incident_id)
    _not_connected(ctx, entry)
    if presence is None:
        return
    if (
        presence.on_duty
        and presence.lat is not None
        and presence.lon is not None
        and presence.located_at
        and presence.seen_at
    ):
        ctx.live.move(
            entry,
            presence.lat,
            presence.lon,
            presence.located_at.timestamp(),
            presence.seen_at.timestamp(),
            presence.accuracy_m,
        )
    ctx.live.set_duty(entry, presence.on_duty)


async def rebuild(ctx: AppContext) -> int:
    """On start: every on-duty guard's last known position back into the index."""
    async with ctx.db.transaction(readonly=True) as session:
        rows = (
            await session.execute(
                select(Guard, SecurityCompany, GuardPresence)
                .join(SecurityCompany, SecurityCompany.id == Guard.company_id)
                .join(GuardPresence, GuardPresence.guard_id == Guard.id)
                .where(GuardPresence.on_duty.is_(True))
            )
        ).all()
        held = await engagement.activities(session)
    for guard, company, presence in rows:
        entry = ctx.live.put(entry_for(guard, company))
        _restore(ctx, entry, presence, held.get(guard.id))
    return len(rows)


def _not_connected(ctx: AppContext, entry: GuardEntry) -> None:
    """No socket of this process holds the guard yet: shown offline, never dispatched,
    until its phone connects (a position from the database is no sign of a live phone)."""
    if not entry.connected:
        ctx.live.mark_stale(entry)


# What going off duty writes: duty off and no last position.
OFF_DUTY_CLEARS: dict[str, object] = {
    "on_duty": False,
    **dict.fromkeys(
        ("lat", "lon", "accuracy_m", "heading", "speed_mps", "located_at", "seen_at"), None
    ),
}


async def set_duty(session: AsyncSession, ctx: AppContext, guard_id: str, on_duty: bool) -> None:
    """Go on or off duty. Off duty declines pending offers; an active assignment refuses it."""
    now = ctx.clock.now()
    actor = f"guard:{guard_id}"
    if not on_duty:
        held = await engagement.current(session, guard_id)
        if held is not None and held.kind == "assignment":
            raise Conflict(
                f"clear assignment '{held.ref_id}' before going off duty", code="assignment_active"
            )
        if held is not None:
            offer = await session.get(Offer, held.ref_id)
            incident = await session.get(Incident, held.incident_id, with_for_update=True)
            assert offer is not None and incident is not None
            if await offers.withdraw(session, ctx, incident, offer, "off_duty", actor):
                await engine.advance(session, ctx, incident)
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    # Off duty keeps no position (CNIL): the last one goes with the duty, in one statement.
    changes: dict[str, object] = {"on_duty": on_duty} if on_duty else {**OFF_DUTY_CLEARS}
    # Other replicas read presence by changed_at, and dispatch a guard whose socket is on a
    # live replica (app/cluster/peers.py).
    changes["changed_at"] = func.now() if insert is postgresql.insert else now
    if ctx.hub.guard_link(guard_id) is not None:
        changes["replica_id"] = ctx.replica_id
    await session.execute(
        insert(GuardPresence)
        .values(guard_id=guard_id, **changes)
        .on_conflict_do_update(index_elements=["guard_id"], set_=changes)
    )
    await ctx.events.record(
        session,
        type="guard.on_duty" if on_duty else "guard.off_duty",
        actor=actor,
        at=now,
        data={"guard_id": guard_id},
    )

    def apply() -> None:
        entry = ctx.live.get(guard_id)
        if entry is not None:
            ctx.live.set_duty(entry, on_duty)
        if on_duty:
            ctx.availability.poke()
        else:
            ctx.positions.forget(guard_id)  # and any position still waiting to be written

    after_commit(session, apply)


async def nearby(
    session: AsyncSession, ctx: AppContext, lat: float, lon: float, radius_m: float, limit: int
) -> list[dict[str, object]]:
    """Dispatchable guards nearest first, with the registry record of each."""
    found = ctx.live.nearest(lat, lon, k=limit, radius_m=radius_m, now=ctx.clock.now().timestamp())
    guards = {
        g.id: g
        for g in (
            await session.scalars(
                select(Guard).where(Guard.id.in_([n.entry.guard_id for n in found]))
            )
        ).all()
    }
    return [
        {
            "guard": guards[n.entry.guard_id],
            "distance_m": round(n.distance_m, 1),
            "eta_s": round(n.distance_m / n.entry.speed_mps),
            "position": {"lat": n.entry.lat, "lon": n.entry.lon},
            "seen_at": dt.datetime.fromtimestamp(n.entry.seen_at, dt.UTC),
        }
        for n in found
        if n.entry.guard_id in guards
    ]
