"""An offer's life after it is sent: accepted, declined, expired or withdrawn."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.dispatch import assignments, decisions, engagement, engine, timers
from app.errors import Conflict, NotFound
from app.models import Assignment, Incident, Offer
from app.models.status import OfferOutcome
from app.realtime import outbox
from app.realtime.frames import withdrawn_frame

if TYPE_CHECKING:
    from app.context import AppContext


class OfferClosed(Conflict):
    """The offer is no longer open; the guard is told it was withdrawn."""

    code = "offer_closed"

    def __init__(self, offer: Offer, reason: str | None = None) -> None:
        reason = reason or offer.reason or offer.outcome or "closed"
        super().__init__(f"offer '{offer.id}' is already {reason}")
        self.offer_id = offer.id
        self.reason = reason


async def _guard_offer(session: AsyncSession, guard_id: str, offer_id: str) -> Offer:
    offer = await session.get(Offer, offer_id)
    if offer is None or offer.guard_id != guard_id:  # never reveal other guards' offers
        raise NotFound(f"offer '{offer_id}' not found")
    return offer


async def _lock_incident(session: AsyncSession, offer: Offer) -> Incident:
    """Lock the offer's incident. Every writer locks the incident before its offers (and
    offers before engagements and timers): one order, so overlapping writers never
    deadlock."""
    incident = await session.get(Incident, offer.incident_id, with_for_update=True)
    assert incident is not None
    return incident


async def _close(
    session: AsyncSession,
    ctx: AppContext,
    offer: Offer,
    outcome: str,
    reason: str | None,
    now: dt.datetime,
) -> bool:
    """Close an open offer (conditional UPDATE: only one closer wins) and free its guard."""
    result = await session.execute(
        update(Offer)
        .where(Offer.id == offer.id, Offer.outcome.is_(None))
        .values(outcome=outcome, reason=reason, responded_at=now)
        .execution_options(synchronize_session="fetch")
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    await timers.cancel(session, engine.OFFER_EXPIRY, offer.id)
    if outcome != OfferOutcome.ACCEPTED:
        await engagement.release(session, ctx, offer.guard_id, offer.id)
    return True


async def _record(
    session: AsyncSession,
    ctx: AppContext,
    incident: Incident,
    offer: Offer,
    kind: str,
    actor: str,
    **data: object,
) -> None:
    await ctx.events.record(
        session,
        type=f"offer.{kind}",
        actor=actor,
        at=ctx.clock.now(),
        incident_id=incident.id,
        station_id=incident.station_id,
        data={
            "offer_id": offer.id,
            "guard_id": offer.guard_id,
            "wave": offer.wave,
            "distance_m": round(offer.distance_m, 1),
            "offered_at": offer.offered_at.isoformat(),
            **data,
        },
    )


@dataclass(frozen=True, slots=True)
class Accepted:
    """What an accept led to: the assignment (`repeat` if won before), or None: seat lost."""

    assignment: Assignment | None
    repeat: bool = False


async def accept(session: AsyncSession, ctx: AppContext, guard_id: str, offer_id: str) -> Accepted:
    """The guard takes the job if a seat is still free.

    A repeat for an offer the guard already won answers the same assignment (nothing is
    written). A lost seat is an outcome that stands (the offer is withdrawn `filled`, the
    guard freed and told through the outbox), so it is returned for the caller to commit,
    never raised: an error means nothing happened.
    """
    offer = await _guard_offer(session, guard_id, offer_id)
    incident = await _lock_incident(session, offer)
    await session.refresh(offer)  # judged as it stands under the lock, not as first read
    now = ctx.clock.now()
    verdict = decisions.judge_accept(offer.outcome, offer.expires_at, now)
    if verdict == "repeat":
        return Accepted(await _won(session, offer), repeat=True)
    if verdict == "late":
        raise OfferClosed(offer, reason="expired")
    if verdict == "closed":
        raise OfferClosed(offer)
    if not await assignments.take_seat(session, incident):
        # Filled by faster guards (or ended): this accept loses, and that stands.
        await withdraw(session, ctx, incident, offer, "filled", f"guard:{guard_id}", late=True)
        return Accepted(None)
    if not await _close(session, ctx, offer, OfferOutcome.ACCEPTED, None, now):
        raise OfferClosed(offer)  # closed by a concurrent writer: the seat rolls back too
    response_s = (now - offer.offered_at).total_seconds()
    await _record(
        session,
        ctx,
        incident,
        offer,
        OfferOutcome.ACCEPTED,
        f"guard:{guard_id}",
        response_s=round(response_s, 1),
    )
    assignment = await assignments.create(
        session,
        ctx,
        incident,
        guard_id,
        source="offer",
        actor=f"guard:{guard_id}",
        offer_id=offer.id,
    )
    if incident.assigned_count >= incident.required_guards:
        await withdraw_open(session, ctx, incident, reason="filled", actor=engine.ACTOR)
    return Accepted(assignment)


async def _won(session: AsyncSession, offer: Offer) -> Assignment:
    """The assignment an accepted offer led to."""
    assignment = await session.scalar(select(Assignment).where(Assignment.offer_id == offer.id))
    if assignment is None:  # accepted but never assigned cannot happen; answer as closed
        raise OfferClosed(offer)
    return assignment


async def decline(
    session: AsyncSession, ctx: AppContext, guard_id: str, offer_id: str, reason: str | None
) -> None:
    offer = await _guard_offer(session, guard_id, offer_id)
    incident = await _lock_incident(session, offer)
    if not await _close(session, ctx, offer, OfferOutcome.DECLINED, reason, ctx.clock.now()):
        await session.refresh(offer)
        raise OfferClosed(offer)
    await _record(
        session, ctx, incident, offer, OfferOutcome.DECLINED, f"guard:{guard_id}", reason=reason
    )
    await engine.advance(session, ctx, incident)


async def expire(session: AsyncSession, ctx: AppContext, offer_id: str) -> None:
    """Timer handler: no answer in time. The guard is told, the next wave may go out."""
    offer = await session.get(Offer, offer_id)
    if offer is None:
        return
    incident = await _lock_incident(session, offer)
    if not await _close(session, ctx, offer, OfferOutcome.EXPIRED, "expired", ctx.clock.now()):
        return
    await outbox.enqueue(session, ctx, offer.guard_id, withdrawn_frame(offer.id, "expired"))
    await _record(session, ctx, incident, offer, OfferOutcome.EXPIRED, engine.ACTOR)
    await engine.advance(session, ctx, incident)


async def withdraw(
    session: AsyncSession,
    ctx: AppContext,
    incident: Incident,
    offer: Offer,
    reason: str,
    actor: str,
    *,
    late: bool = False,
) -> bool:
    """Close an open offer as withdrawn, free its guard and tell them; False if not open."""
    if not await _close(session, ctx, offer, OfferOutcome.WITHDRAWN, reason, ctx.clock.now()):
        return False
    await outbox.enqueue(session, ctx, offer.guard_id, withdrawn_frame(offer.id, reason))
    extra = {"late_accept": True} if late else {}
    await _record(
        session, ctx, incident, offer, OfferOutcome.WITHDRAWN, actor, reason=reason, **extra
    )
    return True


async def withdraw_open(
    session: AsyncSession, ctx: AppContext, incident: Incident, reason: str, actor: str
) -> int:
    """Withdraw every open offer of the incident (filled, cancelled, resolved…)."""
    open_offers = (
        await session.scalars(
            select(Offer)
            .where(Offer.incident_id == incident.id, Offer.outcome.is_(None))
            .order_by(Offer.id)
        )
    ).all()
    withdrawn = 0
    for offer in open_offers:
        withdrawn += await withdraw(session, ctx, incident, offer, reason, actor)
    return withdrawn
