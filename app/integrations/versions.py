"""An incident's published versions, for the standards exports (CAP, EIDO).

A version is what the incident looked like after one of the events that change what those
documents say: its creation and each later status change (`incident.created`,
`incident.<status>`; `incident.assigned` is one per guard, so a second guard is a new version
too). `incident.dispatching` is not one: intake writes it in the transaction that creates the
incident, so nobody ever sees the incident before it, and the first message a receiver can
fetch must be the `Alert`. Each version is one message, named by the incident and the event
that produced it, so the same version always has the same identifier however often it is
fetched, and a later message can list the earlier ones.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Event

VERSION_EVENTS = frozenset(
    {
        "incident.created",
        "incident.assigned",
        "incident.on_scene",
        "incident.resolved",
        "incident.closed",
        "incident.cancelled",
    }
)


@dataclass(frozen=True)
class Version:
    """One published version: the event that produced it and when."""

    incident_id: str
    event_id: int
    at: dt.datetime

    @property
    def identifier(self) -> str:
        """`<incident id>.<event id>`: unique per message, the same on every fetch."""
        return f"{self.incident_id}.{self.event_id}"


async def versions(session: AsyncSession, incident_id: str) -> list[Version]:
    """The incident's versions, oldest first."""
    rows = await session.execute(
        select(Event.id, Event.at)
        .where(Event.incident_id == incident_id, Event.type.in_(VERSION_EVENTS))
        .order_by(Event.id)
    )
    return [Version(incident_id, event_id, at) for event_id, at in rows]
