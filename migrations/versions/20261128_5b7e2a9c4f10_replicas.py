"""replicas: who holds each guard's socket, and the replicas' heartbeats

Revision ID: 5b7e2a9c4f10
Revises: 9f3b6c1d2e85
Create Date: 2026-11-28 09:00:00.000000

Several server processes on one PostgreSQL learn each other's guards from
`guard_presence` (`replica_id`, `changed_at`) and each other's liveness from `replicas`.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.models.types

revision: str = "5b7e2a9c4f10"
down_revision: str | None = "9f3b6c1d2e85"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("guard_presence", schema=None) as batch_op:
        batch_op.add_column(sa.Column("replica_id", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("changed_at", app.models.types.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.create_index(
            batch_op.f("ix_guard_presence_changed_at"), ["changed_at"], unique=False
        )
    op.create_table(
        "replicas",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("started_at", app.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", app.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_replicas")),
    )
    with op.batch_alter_table("replicas", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_replicas_heartbeat_at"), ["heartbeat_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("replicas", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_replicas_heartbeat_at"))
    op.drop_table("replicas")
    with op.batch_alter_table("guard_presence", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_guard_presence_changed_at"))
        batch_op.drop_column("changed_at")
        batch_op.drop_column("replica_id")
