"""Outbound webhooks: subscriptions, deliveries (the outbox) and every attempt."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, id_column
from app.models.types import BigIntPK, JSONType, UTCDateTime


class WebhookSubscription(Base):
    __tablename__ = "webhook_subscriptions"

    id: Mapped[str] = id_column()
    url: Mapped[str] = mapped_column(String(2000))
    # The signing secret sealed with the service key (it must be recoverable to sign).
    sealed_secret: Mapped[str] = mapped_column(String(255))
    event_types: Mapped[list[str]] = mapped_column(JSONType)
    station_id: Mapped[str | None] = mapped_column(ForeignKey("police_stations.id"), index=True)
    active: Mapped[bool] = mapped_column(Boolean(), default=True)
    disabled_reason: Mapped[str | None] = mapped_column(String(200))
    created_by: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    deleted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class WebhookDelivery(Base):
    """One event for one subscription. Its id is the `webhook-id`, stable across retries."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
    )

    id: Mapped[str] = id_column()
    subscription_id: Mapped[str] = mapped_column(ForeignKey("webhook_subscriptions.id"), index=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id"))
    event_type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    status: Mapped[str] = mapped_column(String(16))  # pending | delivered | failed
    attempts: Mapped[int] = mapped_column(Integer(), default=0)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    last_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class WebhookAttempt(Base):
    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(ForeignKey("webhook_deliveries.id"), index=True)
    attempted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    status_code: Mapped[int | None] = mapped_column(Integer())
    latency_ms: Mapped[float] = mapped_column(Float())
    response_excerpt: Mapped[str | None] = mapped_column(Text())
    error: Mapped[str | None] = mapped_column(String(500))
