"""Offers, assignments, and the one-engagement-per-guard rule that prevents double booking."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, id_column
from app.models.types import UTCDateTime


class Offer(Base):
    """An incident offered to one guard in one wave; `outcome` is null while open."""

    __tablename__ = "offers"
    __table_args__ = (
        Index("ix_offers_incident_id_outcome", "incident_id", "outcome"),
        Index("ix_offers_guard_id", "guard_id"),
    )

    id: Mapped[str] = id_column()
    incident_id: Mapped[str] = mapped_column(ForeignKey("incidents.id"))
    guard_id: Mapped[str] = mapped_column(ForeignKey("guards.id"))
    wave: Mapped[int] = mapped_column(Integer())
    rank: Mapped[int] = mapped_column(Integer())
    distance_m: Mapped[float] = mapped_column(Float())
    eta_s: Mapped[float] = mapped_column(Float())
    travel_mode: Mapped[str] = mapped_column(String(16))
    offered_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    outcome: Mapped[str | None] = mapped_column(String(16))
    responded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    reason: Mapped[str | None] = mapped_column(String(200))


class Assignment(Base):
    """A guard working an incident: en_route → on_scene → cleared."""

    __tablename__ = "assignments"
    __table_args__ = (
        Index("ix_assignments_incident_id", "incident_id"),
        Index("ix_assignments_guard_id", "guard_id"),
    )

    id: Mapped[str] = id_column()
    incident_id: Mapped[str] = mapped_column(ForeignKey("incidents.id"))
    guard_id: Mapped[str] = mapped_column(ForeignKey("guards.id"))
    offer_id: Mapped[str | None] = mapped_column(ForeignKey("offers.id"))
    source: Mapped[str] = mapped_column(String(16))  # offer | operator | report
    status: Mapped[str] = mapped_column(String(16))
    assigned_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    on_scene_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    cleared_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    note: Mapped[str | None] = mapped_column(String(2000))


class GuardEngagement(Base):
    """At most one open offer-or-assignment per guard: the primary key is the rule.

    Claiming a guard is an INSERT; whoever inserts first holds the guard, everyone else
    gets a conflict. Released by deleting the row.
    """

    __tablename__ = "guard_engagements"

    guard_id: Mapped[str] = mapped_column(ForeignKey("guards.id"), primary_key=True)
    incident_id: Mapped[str] = mapped_column(ForeignKey("incidents.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # offer | assignment
    ref_id: Mapped[str] = mapped_column(String(40))
    since: Mapped[dt.datetime] = mapped_column(UTCDateTime())
