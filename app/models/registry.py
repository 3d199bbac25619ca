"""Who can respond: security companies, their guards, police stations and units."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Date, Float, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, Timestamps, id_column
from app.models.types import JSONType, UTCDateTime


class SecurityCompany(Timestamps, Base):
    __tablename__ = "security_companies"

    id: Mapped[str] = id_column()
    name: Mapped[str] = mapped_column(String(200))
    licence_no: Mapped[str] = mapped_column(String(64), unique=True)
    licence_expires_on: Mapped[dt.date] = mapped_column(Date())
    status: Mapped[str] = mapped_column(String(16), default="active")


class Guard(Timestamps, Base):
    __tablename__ = "guards"

    id: Mapped[str] = id_column()
    company_id: Mapped[str] = mapped_column(ForeignKey("security_companies.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    badge_no: Mapped[str] = mapped_column(String(64), unique=True)
    phone: Mapped[str | None] = mapped_column(String(32))
    skills: Mapped[list[str]] = mapped_column(JSONType, default=list)
    certificate_expires_on: Mapped[dt.date] = mapped_column(Date())
    status: Mapped[str] = mapped_column(String(16), default="active", index=True)
    # The local date the guard left the company (status `left`): staff turnover counts it.
    left_on: Mapped[dt.date | None] = mapped_column(Date())


class PoliceStation(Timestamps, Base):
    __tablename__ = "police_stations"

    id: Mapped[str] = id_column()
    name: Mapped[str] = mapped_column(String(200), unique=True)
    jurisdiction: Mapped[dict[str, Any]] = mapped_column(JSONType)
    contact_phone: Mapped[str | None] = mapped_column(String(32))


class PoliceUnit(Timestamps, Base):
    __tablename__ = "police_units"

    id: Mapped[str] = id_column()
    call_sign: Mapped[str] = mapped_column(String(64), unique=True)
    station_id: Mapped[str] = mapped_column(ForeignKey("police_stations.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="available")
    lat: Mapped[float | None] = mapped_column(Float())
    lon: Mapped[float | None] = mapped_column(Float())
    located_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())

    @property
    def location(self) -> dict[str, float] | None:
        return None if self.lat is None or self.lon is None else {"lat": self.lat, "lon": self.lon}
