"""Escalations: the police station told about an incident, and how far it has got."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, id_column
from app.models.types import JSONType, UTCDateTime


class Escalation(Base):
    """sent → acknowledged → police_on_scene → handed_over; one per incident and station."""

    __tablename__ = "escalations"
    __table_args__ = (UniqueConstraint("incident_id", "station_id"),)

    id: Mapped[str] = id_column()
    incident_id: Mapped[str] = mapped_column(ForeignKey("incidents.id"), index=True)
    station_id: Mapped[str] = mapped_column(ForeignKey("police_stations.id"), index=True)
    reason: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(32))
    outside_jurisdiction: Mapped[bool] = mapped_column(Boolean(), default=False)
    distance_to_jurisdiction_m: Mapped[float | None] = mapped_column(Float())
    recommended_units: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    unit_id: Mapped[str | None] = mapped_column(ForeignKey("police_units.id"))
    note: Mapped[str | None] = mapped_column(String(2000))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    acknowledged_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    police_on_scene_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    handed_over_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
