"""Durable delivery: per-guard message outbox with sequence numbers, and due-time timers."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base
from app.models.types import BigIntPK, JSONType, UTCDateTime


class GuardChannel(Base):
    """A guard's message channel: the last sequence number handed out and acknowledged."""

    __tablename__ = "guard_channels"

    guard_id: Mapped[str] = mapped_column(ForeignKey("guards.id"), primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger(), default=0)
    acked_seq: Mapped[int] = mapped_column(BigInteger(), default=0)


class GuardMessage(Base):
    """A frame for a guard, kept until acknowledged and replayed in order on reconnect."""

    __tablename__ = "guard_messages"
    __table_args__ = (Index("ix_guard_messages_created_at", "created_at"),)

    guard_id: Mapped[str] = mapped_column(ForeignKey("guards.id"), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger(), primary_key=True, autoincrement=False)
    frame: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class Timer(Base):
    """Something that must happen at `due_at` even across a restart; deleted when it fires."""

    __tablename__ = "timers"
    __table_args__ = (UniqueConstraint("kind", "subject_id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[str] = mapped_column(String(40))
    due_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)
    attempts: Mapped[int] = mapped_column(Integer(), default=0)
