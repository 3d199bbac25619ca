"""The security audit log, and where each hash chain (audit log, event log) is sealed up to."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base
from app.models.types import BigIntPK, JSONType, UTCDateTime


class AuditRecord(Base):
    """One security event: who (actor), from where (address), when (UTC, 10 ms), what.

    Append-only. `chain_seq` / `chain_hash` are empty when written and filled in by the
    sealer (app/audit/chain.py), which links each row to the one before it.
    """

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_type_id", "type", "id"),
        Index("ix_audit_log_actor_id", "actor", "id"),
        Index("ix_audit_log_subject_id", "subject", "id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)
    type: Mapped[str] = mapped_column(String(64))
    # Principal.actor ('user:usr_…', 'api_key:key_…', 'guard:grd_…', 'system:cli'), or
    # 'anonymous' when nobody was authenticated (a failed sign-in).
    actor: Mapped[str] = mapped_column(String(80))
    address: Mapped[str | None] = mapped_column(String(64))  # the client's IP address
    # Whom or what it concerns: 'user:usr_…', 'api_key:key_…', 'guard:grd_…', a route.
    subject: Mapped[str | None] = mapped_column(String(200))
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    chain_seq: Mapped[int | None] = mapped_column(BigInteger())
    chain_hash: Mapped[str | None] = mapped_column(String(64))


class ChainHead(Base):
    """How far one hash chain is sealed: its last row's id, position and hash."""

    __tablename__ = "chain_heads"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)  # 'events' | 'audit_log'
    last_id: Mapped[int] = mapped_column(BigInteger())
    last_seq: Mapped[int] = mapped_column(BigInteger())
    last_hash: Mapped[str] = mapped_column(String(64))
    sealed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
