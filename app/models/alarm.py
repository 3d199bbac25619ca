"""Alarm intake (ASAP, alarm company → dispatch): monitored sites and the alarms they raise."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, Timestamps, id_column
from app.models.types import JSONType, UTCDateTime


class AlarmAccount(Timestamps, Base):
    """A monitored site of a security company: where its alarms send guards and police.

    `account` is the number the alarm company's receiver sends with each alarm; one number
    names one site across the service. `station_id` is the jurisdiction the site lies in.
    """

    __tablename__ = "alarm_accounts"
    __table_args__ = (
        UniqueConstraint("account"),
        Index("ix_alarm_accounts_company_id", "company_id"),
        Index("ix_alarm_accounts_station_id", "station_id"),
    )

    id: Mapped[str] = id_column()
    company_id: Mapped[str] = mapped_column(ForeignKey("security_companies.id"))
    account: Mapped[str] = mapped_column(String(64))
    site_name: Mapped[str] = mapped_column(String(200))
    lat: Mapped[float] = mapped_column(Float())
    lon: Mapped[float] = mapped_column(Float())
    station_id: Mapped[str | None] = mapped_column(ForeignKey("police_stations.id"))
    contacts: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_by: Mapped[str] = mapped_column(String(80))

    @property
    def location(self) -> dict[str, float]:
        return {"lat": self.lat, "lon": self.lon}


class Alarm(Base):
    """One alarm as received, accepted or rejected, and what became of it.

    `outcome` is `accepted` (with the incident it opened) or `rejected` (with `reason`:
    too_old, unknown_account, duplicate, account_suspended). `latched` marks the accepted
    alarm that holds its (account, zone, event_code) for the duplicate window: the partial
    unique index lets one latched row exist per key, so of two identical alarms racing,
    the database lets exactly one in. A latch past the window is released before the next
    insert; cancelling the alarm releases it at once.
    """

    __tablename__ = "alarms"
    __table_args__ = (
        Index(
            "uq_alarms_latch",
            "account_id",
            "zone",
            "event_code",
            unique=True,
            sqlite_where=text("latched"),
            postgresql_where=text("latched"),
        ),
        Index("ix_alarms_account_id", "account_id"),
        Index("ix_alarms_incident_id", "incident_id"),
        Index("ix_alarms_received_at", "received_at"),
    )

    id: Mapped[str] = id_column()
    account: Mapped[str] = mapped_column(String(64))  # as sent, known or not
    account_id: Mapped[str | None] = mapped_column(ForeignKey("alarm_accounts.id"))
    company_id: Mapped[str | None] = mapped_column(ForeignKey("security_companies.id"))
    station_id: Mapped[str | None] = mapped_column(ForeignKey("police_stations.id"))
    zone: Mapped[str] = mapped_column(String(64))  # '' when the alarm names no zone
    event_code: Mapped[str] = mapped_column(String(16))
    verification: Mapped[str] = mapped_column(String(8))
    description: Mapped[str | None] = mapped_column(String(2000))
    occurred_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    outcome: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(32))
    duplicate_of: Mapped[str | None] = mapped_column(String(40))
    priority: Mapped[int | None] = mapped_column()
    incident_id: Mapped[str | None] = mapped_column(ForeignKey("incidents.id"))
    latched: Mapped[bool] = mapped_column(Boolean(), default=False)
    received_by: Mapped[str] = mapped_column(String(80))
    cancelled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    cancel_reason: Mapped[str | None] = mapped_column(String(32))
    cancelled_by: Mapped[str | None] = mapped_column(String(80))
