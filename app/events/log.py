"""Write events in the caller's transaction; publish them to the hub after commit."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any, cast

from sqlalchemy import Table, insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.clock import isoformat
from app.db import SERIAL, after_commit
from app.models import Event

log = logging.getLogger("app.events")

# Core, not the ORM: the event insert is on every write path.
_EVENTS = cast(Table, Event.__table__)
_INSERT_EVENT = insert(_EVENTS).returning(_EVENTS.c.id)

EventSink = Callable[[dict[str, Any]], None]
OutboxWriter = Callable[[AsyncSession, Event], Any]


class EventLog:
    """Appends events; `publish` fans committed events out, `outbox` adds deliveries."""

    def __init__(self, publish: EventSink | None = None) -> None:
        self.publish = publish
        self.outbox_writers: list[OutboxWriter] = []

    async def record(
        self,
        session: AsyncSession,
        *,
        type: str,
        actor: str,
        at: dt.datetime,
        incident_id: str | None = None,
        station_id: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> Event:
        """Append one event in the session's transaction."""
        if not session.info.get(SERIAL):
            raise RuntimeError("events are recorded only in serial transactions (see Database)")
        values = {
            "type": type,
            "actor": actor,
            "at": at,
            "incident_id": incident_id,
            "station_id": station_id,
            "data": data or {},
        }
        await session.flush()  # rows the event refers to go first
        # Core, not the unit of work: an event is written once and never changed, and this
        # is the hottest insert in the service.
        connection = await session.connection()
        event = Event(id=(await connection.execute(_INSERT_EVENT, values)).scalar_one(), **values)
        for write in self.outbox_writers:
            await write(session, event)
        payload = event_json(event)
        publish = self.publish

        def committed() -> None:
            log.info(
                "%s by %s",
                payload["type"],
                payload["actor"],
                extra={"incident_id": payload["incident_id"], "event_id": payload["id"]},
            )
            if publish is not None:
                publish(payload)

        after_commit(session, committed)
        return event


def event_json(event: Event) -> dict[str, Any]:
    """The event as clients see it (DESIGN §5)."""
    return {
        "id": str(event.id),
        "type": event.type,
        "incident_id": event.incident_id,
        "station_id": event.station_id,
        "actor": event.actor,
        "at": isoformat(event.at),
        "data": event.data,
    }
