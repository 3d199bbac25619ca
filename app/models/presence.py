"""Where guards are: last known position and duty per guard, and a bounded history."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, Float, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base
from app.models.types import BigIntPK, UTCDateTime


class GuardPresence(Base):
    """One row per guard: duty, last accepted position (written behind from the live index)."""

    __tablename__ = "guard_presence"

    guard_id: Mapped[str] = mapped_column(ForeignKey("guards.id"), primary_key=True)
    on_duty: Mapped[bool] = mapped_column(Boolean(), default=False)
    lat: Mapped[float | None] = mapped_column(Float())
    lon: Mapped[float | None] = mapped_column(Float())
    accuracy_m: Mapped[float | None] = mapped_column(Float())
    heading: Mapped[float | None] = mapped_column(Float())
    speed_mps: Mapped[float | None] = mapped_column(Float())
    located_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    seen_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    # Replicas (app/cluster/): which server process holds the guard's socket now, and
    # when this row last changed, so other replicas read only what moved.
    replica_id: Mapped[str | None] = mapped_column(String(64))
    changed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), index=True)


class Replica(Base):
    """A running server process on this database; alive while its heartbeat is fresh."""

    __tablename__ = "replicas"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    heartbeat_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)


class PositionHistory(Base):
    """Accepted positions kept for audit, pruned after the retention period."""

    __tablename__ = "position_history"
    __table_args__ = (Index("ix_position_history_guard_id_located_at", "guard_id", "located_at"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    guard_id: Mapped[str] = mapped_column(ForeignKey("guards.id"))
    lat: Mapped[float] = mapped_column(Float())
    lon: Mapped[float] = mapped_column(Float())
    accuracy_m: Mapped[float | None] = mapped_column(Float())
    located_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)
