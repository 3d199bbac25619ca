"""Races: only the database's constraints and row locks decide.

On PostgreSQL writers run concurrently (no writer lock since issue 13), so the racers'
transactions really interleave. SQLite serialises every writer itself (BEGIN IMMEDIATE,
one process), so there the same tests check the outcome only.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, select

from app.dispatch import offers
from app.models import Assignment, GuardEngagement, Incident, Offer
from tests.harness import Harness, start_harness
from tests.phones import WAIT_S, Phone, guard_at, offset

pytestmark = pytest.mark.usefixtures("backend")
ROUNDS = 3


@pytest.fixture
async def unlocked(own_database_url: str) -> AsyncIterator[Harness]:
    async with start_harness(own_database_url) as running:
        yield running


async def _answer(phone: Phone, offer: dict[str, Any]) -> dict[str, Any]:
    """The phone's answer about this offer: its assignment, its withdrawal or an error.
    (A loser may hear twice that its offer went: the reply to its accept, and the
    sequenced frame of the winner's commit.)"""

    def about(frame: dict[str, Any]) -> bool:
        if frame["type"] == "assignment":
            return bool(frame["incident"]["id"] == offer["incident"]["id"])
        return frame["type"] == "error" or frame.get("offer_id") == offer["offer_id"]

    for i, frame in enumerate(phone.inbox):
        if about(frame):
            return phone.inbox.pop(i)
    async with asyncio.timeout(WAIT_S):
        while True:
            frame = await phone.recv()
            if about(frame):
                return frame
            phone.inbox.append(frame)


async def _cancel(harness: Harness, incident_id: str) -> None:
    """End a round: the incident is cancelled and its guard stood down."""
    cancelled = await harness.post(
        f"/api/v1/incidents/{incident_id}/cancel", {"note": "race round done"}
    )
    assert cancelled.status_code == 200, cancelled.text


async def _count(harness: Harness, stmt: Any) -> int:
    async with harness.ctx.db.transaction(readonly=True) as session:
        return int(await session.scalar(stmt) or 0)


async def test_accepts_racing_for_one_seat_leave_one_assignment(
    unlocked: Harness, area: tuple[float, float]
) -> None:
    phones = [await guard_at(unlocked, offset(area, east_m=100 * (i + 1))) for i in range(3)]
    for _ in range(ROUNDS):
        incident = await unlocked.make_incident(area, priority=3)
        sent = [await p.expect("offer") for p in phones]
        assert {o["incident"]["id"] for o in sent} == {incident["id"]}
        await asyncio.gather(
            *(
                p.send({"type": "offer.accept", "offer_id": o["offer_id"]})
                for p, o in zip(phones, sent, strict=True)
            )
        )
        answers = [await _answer(p, o) for p, o in zip(phones, sent, strict=True)]
        assert sorted(a["type"] for a in answers) == [
            "assignment",
            "offer.withdrawn",
            "offer.withdrawn",
        ], answers
        assert {a.get("reason") for a in answers if a["type"] == "offer.withdrawn"} == {"filled"}
        detail = (await unlocked.get(f"/api/v1/incidents/{incident['id']}")).json()
        assert detail["assigned_count"] == 1 and len(detail["assignments"]) == 1
        [winner] = [p for p, a in zip(phones, answers, strict=True) if a["type"] == "assignment"]
        held = await _count(
            unlocked,
            select(func.count())
            .select_from(GuardEngagement)
            .where(GuardEngagement.guard_id.in_([p.id for p in phones])),
        )
        assert held == 1  # the winner only; the others are free again
        await _cancel(unlocked, incident["id"])
        await winner.expect("incident.update")
    for phone in phones:
        await phone.close()


async def test_incidents_racing_for_one_guard_claim_it_once(
    unlocked: Harness, area: tuple[float, float]
) -> None:
    phone = await guard_at(unlocked, offset(area, north_m=100))
    headers = await unlocked.headers("operator")
    body = {
        "category": "theft",
        "priority": 3,
        "location": {"lat": area[0], "lon": area[1]},
        "description": "race",
    }
    responses = await asyncio.gather(
        *(unlocked.client.post("/api/v1/incidents", json=body, headers=headers) for _ in range(4))
    )
    assert [r.status_code for r in responses] == [201] * 4, [r.text for r in responses]
    await phone.expect("offer")
    await phone.quiet("offer", within=0.3)
    open_offers = await _count(
        unlocked,
        select(func.count())
        .select_from(Offer)
        .where(Offer.guard_id == phone.id, Offer.outcome.is_(None)),
    )
    held = await _count(
        unlocked,
        select(func.count())
        .select_from(GuardEngagement)
        .where(GuardEngagement.guard_id == phone.id),
    )
    assert (open_offers, held) == (1, 1)
    assert sorted(r.json()["unstaffed"] for r in responses) == [False, True, True, True]
    await phone.close()


async def test_accept_racing_expiry_ends_one_way(
    unlocked: Harness, area: tuple[float, float]
) -> None:
    phone = await guard_at(unlocked, offset(area, north_m=100))
    for _ in range(ROUNDS):
        incident = await unlocked.make_incident(area, priority=3)
        offer = await phone.expect("offer")
        assert offer["incident"]["id"] == incident["id"]

        async def expire(offer_id: str = offer["offer_id"]) -> None:
            async with unlocked.ctx.db.transaction() as session:
                await offers.expire(session, unlocked.ctx, offer_id)

        await asyncio.gather(
            phone.send({"type": "offer.accept", "offer_id": offer["offer_id"]}), expire()
        )
        answer = await _answer(phone, offer)
        async with unlocked.ctx.db.transaction(readonly=True) as session:
            stored = await session.get(Offer, offer["offer_id"])
            assigned = await session.scalar(
                select(func.count())
                .select_from(Assignment)
                .where(Assignment.offer_id == offer["offer_id"])
            )
            row = await session.get(Incident, incident["id"])
        assert stored is not None and row is not None
        if answer["type"] == "assignment":
            assert (stored.outcome, assigned, row.assigned_count) == ("accepted", 1, 1)
            await phone.quiet("offer.withdrawn", within=0.2)
        else:
            assert answer["type"] == "offer.withdrawn" and answer["reason"] == "expired", answer
            assert (stored.outcome, assigned, row.assigned_count) == ("expired", 0, 0)
        await _cancel(unlocked, incident["id"])
        if answer["type"] == "assignment":
            await phone.expect("incident.update")
        await phone.sync()  # the round's other frames (a reply and a sequenced one) are in
        phone.inbox.clear()
    await phone.close()
