"""Incidents and their append-only event log."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine.default import DefaultExecutionContext
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.expression import false

from app.dispatch.policy import tiers_for
from app.models.base import Base, Timestamps, id_column
from app.models.types import BigIntPK, JSONType, UTCDateTime


def _tiers_at_intake(context: DefaultExecutionContext) -> list[str]:
    """The insert's own category and priority decide, whichever path inserts the row."""
    row = context.get_current_parameters()
    return list(tiers_for(row["category"], row["priority"]))


class Incident(Timestamps, Base):
    __tablename__ = "incidents"
    __table_args__ = (
        # A caller's reference is its own: another caller's same reference is another incident.
        UniqueConstraint("caller", "source", "external_ref"),
        UniqueConstraint("idempotency_scope", "idempotency_key"),
        Index("ix_incidents_status_priority", "status", "priority"),
        Index("ix_incidents_lat_lon", "lat", "lon"),
        Index("ix_incidents_created_at", "created_at"),
    )

    id: Mapped[str] = id_column()
    source: Mapped[str] = mapped_column(String(16))
    category: Mapped[str] = mapped_column(String(32))
    priority: Mapped[int] = mapped_column(Integer())
    lat: Mapped[float] = mapped_column(Float())
    lon: Mapped[float] = mapped_column(Float())
    address: Mapped[str | None] = mapped_column(String(500))
    description: Mapped[str] = mapped_column(Text())
    reporter: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    external_ref: Mapped[str | None] = mapped_column(String(128))
    # Who posted it (Principal.actor: 'api_key:key_…', 'user:usr_…', 'guard:grd_…'); scopes
    # external_ref.
    caller: Mapped[str] = mapped_column(String(64))
    idempotency_scope: Mapped[str | None] = mapped_column(String(64))
    idempotency_key: Mapped[str | None] = mapped_column(String(128))
    request_hash: Mapped[str | None] = mapped_column(String(64))
    required_guards: Mapped[int] = mapped_column(Integer())
    # Guards that accepted (or were assigned); the conditional UPDATE on it settles
    # "first accepts win" when several guards accept at once.
    assigned_count: Mapped[int] = mapped_column(Integer(), default=0, server_default="0")
    wave: Mapped[int] = mapped_column(Integer(), default=0, server_default="0")
    status: Mapped[str] = mapped_column(String(16), default="new")
    station_id: Mapped[str | None] = mapped_column(ForeignKey("police_stations.id"), index=True)
    station_match: Mapped[str | None] = mapped_column(String(16))
    unstaffed: Mapped[bool] = mapped_column(Boolean(), default=False)
    created_by: Mapped[str] = mapped_column(String(64))
    resolved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    cancelled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    # The risk tiers guards may be asked to perform (app/dispatch/tiers.py), fixed at intake
    # so that a later policy change does not rewrite what guards were told.
    allowed_tiers: Mapped[list[str]] = mapped_column(JSONType, default=_tiers_at_intake)
    # A drill: dispatched like any incident, marked as one in everything it sends; fixed
    # at intake. Reports leave drills out (filter on it).
    exercise: Mapped[bool] = mapped_column(
        Boolean(), default=False, server_default=false(), index=True
    )

    @property
    def location(self) -> dict[str, float]:
        return {"lat": self.lat, "lon": self.lon}


class Event(Base):
    """One state change: the incident timeline, the audit trail and the stream's source."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_incident_id_id", "incident_id", "id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    incident_id: Mapped[str | None] = mapped_column(ForeignKey("incidents.id"))
    station_id: Mapped[str | None] = mapped_column(String(40), index=True)
    type: Mapped[str] = mapped_column(String(64), index=True)
    actor: Mapped[str] = mapped_column(String(80))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # Written empty; the sealer (app/audit/chain.py) links the row into the hash chain.
    chain_seq: Mapped[int | None] = mapped_column(BigInteger())
    chain_hash: Mapped[str | None] = mapped_column(String(64))
