"""Waves of offers: start dispatch, widen the search, and give up when the waves run out."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import after_commit
from app.dispatch import decisions, engagement, escalation, matching, timers
from app.dispatch.policy import Policy, policy_for
from app.ids import new_id
from app.incidents.service import change_status
from app.models import Incident, Offer
from app.realtime import outbox
from app.realtime.frames import offer_frame

if TYPE_CHECKING:
    from app.context import AppContext

ACTOR = "system:dispatch"
OFFER_EXPIRY = "offer_expiry"


async def start(session: AsyncSession, ctx: AppContext, incident: Incident) -> None:
    """A new incident: mark it dispatching and send the first wave."""
    if incident.status == "new":
        await change_status(session, ctx, incident, "dispatching", ACTOR)
    await _waves(session, ctx, incident, refused=set())  # no offers yet: none pending or refused


async def advance(session: AsyncSession, ctx: AppContext, incident: Incident) -> None:
    """Send the next wave when guards are still needed and no offer is pending."""
    if not _needs_guards(incident):
        return
    if await _pending(session, incident.id):
        return
    await _waves(session, ctx, incident, refused=await _refused(session, incident.id))


async def _waves(
    session: AsyncSession, ctx: AppContext, incident: Incident, refused: set[str]
) -> None:
    """Widen wave by wave until one sends an offer; out of waves, the incident is unstaffed."""
    if not _needs_guards(incident):
        return
    policy = policy_for(incident.category, incident.priority, ctx.settings.policy)
    while incident.wave < len(policy.radii_m):
        incident.wave += 1
        await escalation.before_wave(session, ctx, incident, incident.wave)
        if await _send_wave(session, ctx, incident, policy, refused):
            return
    await _mark_unstaffed(session, ctx, incident)


def _needs_guards(incident: Incident) -> bool:
    return decisions.needs_guards(
        incident.status, incident.assigned_count, incident.required_guards
    )


async def _refused(session: AsyncSession, incident_id: str) -> set[str]:
    """Guards who declined this incident, let its offer expire or had it taken back by an
    operator: not asked again (the operator chose someone else, or nobody)."""
    rows = await session.scalars(
        select(Offer.guard_id).where(
            Offer.incident_id == incident_id,
            or_(
                Offer.outcome.in_(("declined", "expired")),
                and_(Offer.outcome == "withdrawn", Offer.reason == "operator"),
            ),
        )
    )
    return set(rows.all())


async def restaff(
    session: AsyncSession, ctx: AppContext, incident_id: str
) -> tuple[int, frozenset[str]] | None:
    """Offer an unstaffed incident again, within its last radius, to guards free now.

    Returns how many offers went out and who refused it (not asked again); None once the
    incident no longer needs re-offering (staffed, ended, or an operator stopped it).
    """
    incident = await session.get(Incident, incident_id, with_for_update=True)
    if incident is None or not decisions.may_restaff(
        incident.status, incident.unstaffed, incident.assigned_count, incident.required_guards
    ):
        return None
    policy = policy_for(incident.category, incident.priority, ctx.settings.policy)
    pending = await _pending(session, incident.id)
    refused = await _refused(session, incident.id)
    target = decisions.wave_target(
        policy, incident.required_guards, incident.assigned_count, pending
    )
    sent = await _send_wave(session, ctx, incident, policy, refused, target=target)
    return sent, frozenset(refused)


async def _pending(session: AsyncSession, incident_id: str) -> int:
    """Open offers of the incident."""
    count = await session.scalar(
        select(func.count())
        .select_from(Offer)
        .where(Offer.incident_id == incident_id, Offer.outcome.is_(None))
    )
    return int(count or 0)


async def _send_wave(
    session: AsyncSession,
    ctx: AppContext,
    incident: Incident,
    policy: Policy,
    refused: set[str],
    *,
    target: int | None = None,
) -> int:
    radius = decisions.wave_radius(policy, incident.wave)
    needed = incident.required_guards - incident.assigned_count
    now = ctx.clock.now()
    nearby = ctx.live.within(
        incident.lat,
        incident.lon,
        radius_m=radius,
        now=now.timestamp(),
        accept=lambda entry: entry.guard_id not in refused,
    )
    ranked = matching.rank(nearby, policy)
    if target is None:
        target = decisions.wave_target(policy, incident.required_guards, incident.assigned_count)
    offered: list[str] = []
    for candidate in ranked:
        if len(offered) >= target:
            break
        if await _offer(session, ctx, incident, candidate, len(offered) + 1, now, policy):
            offered.append(candidate.guard_id)
    await ctx.events.record(
        session,
        type="dispatch.wave",
        actor=ACTOR,
        at=now,
        incident_id=incident.id,
        station_id=incident.station_id,
        data={
            "wave": incident.wave,
            "radius_m": radius,
            "needed": needed,
            "candidates": len(ranked),
            "offered": offered,
        },
    )
    return len(offered)


async def _offer(
    session: AsyncSession,
    ctx: AppContext,
    incident: Incident,
    candidate: matching.Candidate,
    rank: int,
    now: dt.datetime,
    policy: Policy,
) -> Offer | None:
    offer_id = new_id("off")
    if not await engagement.claim(
        session, ctx, candidate.guard_id, incident.id, "offer", offer_id, now
    ):
        return None  # engaged elsewhere a moment ago: the database said no
    offer = Offer(
        id=offer_id,
        incident_id=incident.id,
        guard_id=candidate.guard_id,
        wave=incident.wave,
        rank=rank,
        distance_m=candidate.distance_m,
        eta_s=candidate.eta_s,
        travel_mode=candidate.travel_mode,
        offered_at=now,
        expires_at=now + dt.timedelta(seconds=policy.offer_timeout_s),
    )
    session.add(offer)
    await timers.schedule(session, ctx, OFFER_EXPIRY, offer.id, offer.expires_at)
    await outbox.enqueue(session, ctx, candidate.guard_id, offer_frame(offer, incident))
    await ctx.events.record(
        session,
        type="offer.sent",
        actor=ACTOR,
        at=now,
        incident_id=incident.id,
        station_id=incident.station_id,
        data={
            "offer_id": offer.id,
            "guard_id": offer.guard_id,
            "wave": offer.wave,
            "rank": rank,
            "distance_m": round(offer.distance_m, 1),
            "eta_s": round(offer.eta_s),
            "travel_mode": offer.travel_mode,
            "expires_at": offer.expires_at.isoformat(),
        },
    )
    return offer


async def _mark_unstaffed(session: AsyncSession, ctx: AppContext, incident: Incident) -> None:
    if incident.unstaffed:
        return
    incident.unstaffed = True
    incident.updated_at = ctx.clock.now()
    await ctx.events.record(
        session,
        type="incident.unstaffed",
        actor=ACTOR,
        at=incident.updated_at,
        incident_id=incident.id,
        station_id=incident.station_id,
        data={
            "waves": incident.wave,
            "assigned": incident.assigned_count,
            "required": incident.required_guards,
        },
    )
    await escalation.on_unstaffed(session, ctx, incident)
    policy = policy_for(incident.category, incident.priority, ctx.settings.policy)
    item = decisions.unstaffed(incident.id, incident.lat, incident.lon, policy, incident.wave)
    after_commit(session, lambda: ctx.availability.remember(item))
