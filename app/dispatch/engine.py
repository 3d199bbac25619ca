"""Waves of offers: start dispatch, widen the search, and give up when the waves run out."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Table, and_, func, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import after_commit
from app.dispatch import decisions, engagement, escalation, matching, timers
from app.dispatch.policy import Policy, policy_for
from app.ids import new_id
from app.incidents.service import change_status
from app.models import Incident, Offer
from app.models.status import EngagementKind, IncidentStatus, OfferOutcome
from app.realtime import outbox
from app.realtime.frames import offer_frame

if TYPE_CHECKING:
    from app.context import AppContext

ACTOR = "system:dispatch"
OFFER_EXPIRY = "offer_expiry"


async def start(session: AsyncSession, ctx: AppContext, incident: Incident) -> None:
    """A new incident: mark it dispatching and send the first wave."""
    if incident.status == IncidentStatus.NEW:
        await change_status(session, ctx, incident, IncidentStatus.DISPATCHING, ACTOR)
    # No offers yet: none pending or refused.
    if await _waves(session, ctx, incident, refused=set()):
        received = incident.created_at

        def offered() -> None:
            waited = (ctx.clock.now() - received).total_seconds()
            ctx.metrics.received_to_first_offer.observe(max(0.0, waited))

        after_commit(session, offered)


async def advance(session: AsyncSession, ctx: AppContext, incident: Incident) -> None:
    """Send the next wave when guards are still needed and no offer is pending."""
    if not _needs_guards(incident):
        return
    if await _pending(session, incident.id):
        return
    await _waves(session, ctx, incident, refused=await _refused(session, incident.id))


async def _waves(
    session: AsyncSession, ctx: AppContext, incident: Incident, refused: set[str]
) -> bool:
    """Widen wave by wave until one sends an offer (True); out of waves, the incident is
    unstaffed."""
    if not _needs_guards(incident):
        return False
    policy = policy_for(incident.category, incident.priority, ctx.settings.policy)
    while incident.wave < len(policy.radii_m):
        incident.wave += 1
        await escalation.before_wave(session, ctx, incident, incident.wave)
        if await _send_wave(session, ctx, incident, policy, refused):
            return True
    await _mark_unstaffed(session, ctx, incident)
    return False


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
                Offer.outcome.in_((OfferOutcome.DECLINED, OfferOutcome.EXPIRED)),
                and_(Offer.outcome == OfferOutcome.WITHDRAWN, Offer.reason == "operator"),
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
    offers = await _offer_wave(session, ctx, incident, ranked, target, now, policy)
    offered = [offer.guard_id for offer in offers]
    events = [_offer_sent(incident, offer) for offer in offers]
    events.append(
        {
            "type": "dispatch.wave",
            "actor": ACTOR,
            "at": now,
            "incident_id": incident.id,
            "station_id": incident.station_id,
            "data": {
                "wave": incident.wave,
                "radius_m": radius,
                "needed": needed,
                "candidates": len(ranked),
                "offered": offered,
            },
        }
    )
    await ctx.events.record_many(session, events)
    return len(offered)


async def _offer_wave(
    session: AsyncSession,
    ctx: AppContext,
    incident: Incident,
    ranked: list[matching.Candidate],
    target: int,
    now: dt.datetime,
    policy: Policy,
) -> list[Offer]:
    """Offer the incident to the best `target` candidates the database lets us claim.

    One multi-row statement each for the claims, offers, expiry timers and frames (Core,
    not the unit of work). The claims go first, in rank order: a guard engaged elsewhere a
    moment ago is not returned, gets no offer, and the next candidates are tried.
    """
    won: list[matching.Candidate] = []
    ids: dict[str, str] = {}
    position = 0
    while len(won) < target and position < len(ranked):
        batch = ranked[position : position + target - len(won)]
        position += len(batch)
        for candidate in batch:
            ids[candidate.guard_id] = new_id("off")
        claimed = await engagement.claim_many(
            session,
            ctx,
            incident.id,
            EngagementKind.OFFER,
            [(candidate.guard_id, ids[candidate.guard_id]) for candidate in batch],
            now,
        )
        won.extend(candidate for candidate in batch if candidate.guard_id in claimed)
    if not won:
        return []
    expires_at = now + dt.timedelta(seconds=policy.offer_timeout_s)
    offers = [
        Offer(
            id=ids[candidate.guard_id],
            incident_id=incident.id,
            guard_id=candidate.guard_id,
            wave=incident.wave,
            rank=rank,
            distance_m=candidate.distance_m,
            eta_s=candidate.eta_s,
            travel_mode=candidate.travel_mode,
            offered_at=now,
            expires_at=expires_at,
        )
        for rank, candidate in enumerate(won, start=1)
    ]
    # Transient objects, never added to the session: the rows go in as one INSERT.
    connection = await session.connection()
    await connection.execute(_INSERT_OFFERS, [_offer_row(offer) for offer in offers])
    await timers.schedule_many(
        session, ctx, OFFER_EXPIRY, [(offer.id, offer.expires_at) for offer in offers]
    )
    await outbox.enqueue_many(
        session, ctx, [(offer.guard_id, offer_frame(offer, incident)) for offer in offers]
    )
    return offers


_OFFERS = cast(Table, Offer.__table__)
_OFFER_COLUMNS = tuple(column.key for column in _OFFERS.columns)
_INSERT_OFFERS = insert(_OFFERS)


def _offer_row(offer: Offer) -> dict[str, object]:
    return {key: getattr(offer, key) for key in _OFFER_COLUMNS}


def _offer_sent(incident: Incident, offer: Offer) -> dict[str, Any]:
    return {
        "type": "offer.sent",
        "actor": ACTOR,
        "at": offer.offered_at,
        "incident_id": incident.id,
        "station_id": incident.station_id,
        "data": {
            "offer_id": offer.id,
            "guard_id": offer.guard_id,
            "wave": offer.wave,
            "rank": offer.rank,
            "distance_m": round(offer.distance_m, 1),
            "eta_s": round(offer.eta_s),
            "travel_mode": offer.travel_mode,
            "expires_at": offer.expires_at.isoformat(),
        },
    }


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
