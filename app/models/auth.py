"""Who may call: console users, integration API keys and guard device tokens (all hashed)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, id_column
from app.models.types import JSONType, UTCDateTime


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = id_column()
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(32))
    company_id: Mapped[str | None] = mapped_column(ForeignKey("security_companies.id"))
    station_id: Mapped[str | None] = mapped_column(ForeignKey("police_stations.id"))
    active: Mapped[bool] = mapped_column(Boolean(), default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    # Lockout (CJIS AC-7, app/auth/lockout.py): when recent sign-ins failed (ISO 8601 UTC,
    # at most the threshold, within the window) and, while locked, when the lock lifts.
    failed_logins: Mapped[list[str]] = mapped_column(JSONType, default=list)
    locked_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = id_column()
    name: Mapped[str] = mapped_column(String(100))
    secret_hash: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[list[str]] = mapped_column(JSONType, default=list)
    station_id: Mapped[str | None] = mapped_column(ForeignKey("police_stations.id"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class GuardToken(Base):
    __tablename__ = "guard_tokens"

    id: Mapped[str] = id_column()
    guard_id: Mapped[str] = mapped_column(ForeignKey("guards.id"), index=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
