"""Area broadcasts: one message to every on-duty guard inside a circle until it expires."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Float, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, id_column
from app.models.types import UTCDateTime


class Broadcast(Base):
    """A message for the guards inside a circle (a missing child, a wanted vehicle)."""

    __tablename__ = "broadcasts"
    __table_args__ = (
        Index("ix_broadcasts_expires_at", "expires_at"),
        Index("ix_broadcasts_station_id", "station_id"),
    )

    id: Mapped[str] = id_column()
    text: Mapped[str] = mapped_column(String(1000))
    lat: Mapped[float] = mapped_column(Float())
    lon: Mapped[float] = mapped_column(Float())
    radius_m: Mapped[float] = mapped_column(Float())
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    station_id: Mapped[str | None] = mapped_column(ForeignKey("police_stations.id"))
    sender: Mapped[str] = mapped_column(String(200))  # the `from` guards see
    created_by: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())

    @property
    def location(self) -> dict[str, float]:
        return {"lat": self.lat, "lon": self.lon}


class BroadcastRecipient(Base):
    """One guard's copy of a broadcast; the primary key makes it once per guard.

    `seq` is the outbox frame's sequence number: the guard's cumulative ack passing it
    (guard_channels.acked_seq) means acknowledged. `delivered_at`: first sent on a socket.
    """

    __tablename__ = "broadcast_recipients"

    broadcast_id: Mapped[str] = mapped_column(ForeignKey("broadcasts.id"), primary_key=True)
    guard_id: Mapped[str] = mapped_column(ForeignKey("guards.id"), primary_key=True)
    seq: Mapped[int | None] = mapped_column(BigInteger())
    queued_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
