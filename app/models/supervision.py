"""Supervision: recognition points, police feedback on guards, and expiry notices sent."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, id_column
from app.models.types import UTCDateTime


class PointAward(Base):
    """One line of a guard's recognition ledger: append-only, never updated.

    `ref` is what earned it (an incident, an intel report, a feedback id); the unique
    constraint makes an award idempotent however often the event is replayed.
    """

    __tablename__ = "point_awards"
    __table_args__ = (
        UniqueConstraint("guard_id", "rule", "ref"),
        Index("ix_point_awards_guard_id_at", "guard_id", "at"),
        Index("ix_point_awards_company_id_at", "company_id", "at"),
        Index("ix_point_awards_station_id_at", "station_id", "at"),
    )

    id: Mapped[str] = id_column()
    guard_id: Mapped[str] = mapped_column(ForeignKey("guards.id"))
    # The guard's company and the incident's station when earned: leaderboards filter on them.
    company_id: Mapped[str] = mapped_column(ForeignKey("security_companies.id"))
    station_id: Mapped[str | None] = mapped_column(String(40))
    incident_id: Mapped[str | None] = mapped_column(ForeignKey("incidents.id"))
    rule: Mapped[str] = mapped_column(String(32))
    points: Mapped[int] = mapped_column(Integer())
    reason: Mapped[str] = mapped_column(String(300))
    ref: Mapped[str] = mapped_column(String(40))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class Feedback(Base):
    """A supervisor's commendation or complaint about a guard's part in an incident."""

    __tablename__ = "feedback"
    __table_args__ = (
        Index("ix_feedback_incident_id", "incident_id"),
        Index("ix_feedback_guard_id", "guard_id"),
        Index("ix_feedback_company_id_created_at", "company_id", "created_at"),
    )

    id: Mapped[str] = id_column()
    incident_id: Mapped[str] = mapped_column(ForeignKey("incidents.id"))
    guard_id: Mapped[str] = mapped_column(ForeignKey("guards.id"))
    company_id: Mapped[str] = mapped_column(ForeignKey("security_companies.id"))
    kind: Mapped[str] = mapped_column(String(16))  # commendation | complaint
    text: Mapped[str] = mapped_column(Text())
    created_by: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class ExpiryNotice(Base):
    """A licence or certificate warning already sent: one per subject, expiry date and
    threshold, so the daily check warns once (and again after a renewal changes the date)."""

    __tablename__ = "expiry_notices"

    subject_kind: Mapped[str] = mapped_column(String(16), primary_key=True)  # company | guard
    subject_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    expires_on: Mapped[dt.date] = mapped_column(Date(), primary_key=True)
    threshold_days: Mapped[int] = mapped_column(Integer(), primary_key=True)
    noticed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
