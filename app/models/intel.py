"""Field intelligence: what guards saw and reported, and how the police triaged it."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Float, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, id_column
from app.models.types import UTCDateTime


class IntelReport(Base):
    """A guard's report of something worth knowing (not an incident: nobody is sent).

    `state` is `new` until the police triage it as `useful`, `not_useful` or `acted_on`.
    """

    __tablename__ = "intel_reports"
    __table_args__ = (
        Index("ix_intel_reports_station_id_state", "station_id", "state"),
        Index("ix_intel_reports_state", "state"),
        Index("ix_intel_reports_guard_id", "guard_id"),
    )

    id: Mapped[str] = id_column()
    guard_id: Mapped[str] = mapped_column(ForeignKey("guards.id"))
    subject: Mapped[str] = mapped_column(String(32))
    description: Mapped[str] = mapped_column(String(4000))
    lat: Mapped[float] = mapped_column(Float())
    lon: Mapped[float] = mapped_column(Float())
    station_id: Mapped[str | None] = mapped_column(ForeignKey("police_stations.id"))
    station_match: Mapped[str | None] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(String(2000))
    triaged_by: Mapped[str | None] = mapped_column(String(80))
    triaged_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    reported_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())

    @property
    def location(self) -> dict[str, float]:
        return {"lat": self.lat, "lon": self.lon}
