"""Write events in the caller's transaction; publish them to the hub after commit."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from typing import Any, cast

from sqlalchemy import Table, insert, inspect, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.util import identity_key

from app.audit.chain import join_writers
from app.clock import isoformat
from app.db import SERIAL, after_commit
from app.models import Event, Incident

log = logging.getLogger("app.events")

# Core, not the ORM: the event insert is on every write path.
_EVENTS = cast(Table, Event.__table__)
_INSERT_EVENTS = insert(_EVENTS).returning(_EVENTS.c.id)
_INSERT_EVENTS_ORDERED = insert(_EVENTS).returning(_EVENTS.c.id, sort_by_parameter_order=True)

EXERCISE_CACHE = 50_000
CommitSink = Callable[[list[dict[str, Any]]], None]
OutboxWriter = Callable[[AsyncSession, Event], Any]


class EventLog:
    """Appends events; `committed` hears of them after commit (the feed), `outbox_writers`
    add deliveries in the same transaction."""

    def __init__(self, committed: CommitSink | None = None) -> None:
        self.committed = committed
        self.outbox_writers: list[OutboxWriter] = []
        # incident id → exercise. Fixed at intake, so a cached answer never goes stale.
        self._exercise: dict[str, bool] = {}

    async def _drills(self, session: AsyncSession, rows: Sequence[dict[str, Any]]) -> set[str]:
        """The rows' incidents that are drills: their events say `exercise: true`, so every
        consumer (stream, webhooks, timeline) can tell a drill without a lookup of its own.
        Read from the session's loaded incident where there is one, else one query."""
        wanted = {row["incident_id"] for row in rows if row.get("incident_id")}
        unknown = []
        for incident_id in wanted - self._exercise.keys():
            loaded = session.identity_map.get(identity_key(Incident, incident_id))
            known = None if loaded is None else inspect(loaded).dict.get("exercise")
            if known is None:
                unknown.append(incident_id)
            else:
                self._remember(incident_id, known)
        if unknown:
            found = await session.execute(
                select(Incident.id, Incident.exercise).where(Incident.id.in_(unknown))
            )
            for incident_id, exercise in found:
                self._remember(incident_id, exercise)
        return {incident_id for incident_id in wanted if self._exercise.get(incident_id)}

    def _remember(self, incident_id: str, exercise: bool) -> None:
        if len(self._exercise) >= EXERCISE_CACHE:
            self._exercise.clear()  # bounded; a miss costs one indexed read
        self._exercise[incident_id] = exercise

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
        values = {
            "type": type,
            "actor": actor,
            "at": at,
            "incident_id": incident_id,
            "station_id": station_id,
            "data": data or {},
        }
        return (await self.record_many(session, [values]))[0]

    async def record_many(
        self, session: AsyncSession, rows: Sequence[dict[str, Any]]
    ) -> list[Event]:
        """Append events in the session's transaction, in this order, as one statement.

        Each row has the keys of `record`'s arguments (type, actor, at, incident_id,
        station_id, data). Ids ascend in the order given, as if recorded one by one.
        """
        if not session.info.get(SERIAL):
            raise RuntimeError("events are recorded only in serial transactions (see Database)")
        if not rows:
            return []
        drills = await self._drills(session, rows)
        values = [
            {
                **row,
                "data": {**(row.get("data") or {}), "exercise": True}
                if row.get("incident_id") in drills
                else row.get("data") or {},
            }
            for row in rows
        ]
        await session.flush()  # rows the events refer to go first
        # Core, not the unit of work: an event is written once and never changed, and this
        # is the hottest insert in the service. One statement for all the rows.
        connection = await session.connection()
        # Rows go in unchained; the sealer links them (app/audit/chain.py). On PostgreSQL
        # this is its one statement per transaction, so it knows when ids are settled.
        await join_writers(session, connection)
        if connection.dialect.name == "postgresql":
            # INSERT … SELECT … FROM (VALUES …) ORDER BY sen_counter RETURNING id: SQLAlchemy
            # matches the ids to the rows in parameter order.
            ids = list((await connection.execute(_INSERT_EVENTS_ORDERED, values)).scalars())
        else:
            # Kept in order, SQLAlchemy would send SQLite one INSERT per row. Unordered it is
            # one INSERT … VALUES (…), (…) RETURNING id, and SQLite inserts a VALUES list in
            # order, each row numbered above the last (this transaction holds the write
            # lock): the ids in ascending order are the rows' ids in order.
            ids = sorted((await connection.execute(_INSERT_EVENTS, values)).scalars())
        events = [Event(id=event_id, **row) for event_id, row in zip(ids, values, strict=True)]
        for event in events:
            for write in self.outbox_writers:
                await write(session, event)
        payloads = [event_json(event) for event in events]
        sink = self.committed

        def committed() -> None:
            for payload in payloads:
                log.info(
                    "%s by %s",
                    payload["type"],
                    payload["actor"],
                    extra={"incident_id": payload["incident_id"], "event_id": payload["id"]},
                )
            if sink is not None:
                sink(payloads)

        after_commit(session, committed)
        return events


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
