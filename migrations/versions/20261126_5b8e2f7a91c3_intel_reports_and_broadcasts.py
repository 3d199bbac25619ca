"""intel reports and area broadcasts

Revision ID: 5b8e2f7a91c3
Revises: a7d3c5e91f04
Create Date: 2026-11-26 09:00:00.000000

Guards' intelligence reports and their police triage (intel_reports); area broadcasts
(broadcasts) and each guard's copy of one, with the outbox sequence number its ack is
measured against (broadcast_recipients).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.models.types

revision: str = "5b8e2f7a91c3"
down_revision: str | None = "a7d3c5e91f04"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TIME = app.models.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "intel_reports",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("guard_id", sa.String(length=40), nullable=False),
        sa.Column("subject", sa.String(length=32), nullable=False),
        sa.Column("description", sa.String(length=4000), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("station_id", sa.String(length=40), nullable=True),
        sa.Column("station_match", sa.String(length=16), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("note", sa.String(length=2000), nullable=True),
        sa.Column("triaged_by", sa.String(length=80), nullable=True),
        sa.Column("triaged_at", _TIME, nullable=True),
        sa.Column("reported_at", _TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["guard_id"], ["guards.id"], name=op.f("fk_intel_reports_guard_id_guards")
        ),
        sa.ForeignKeyConstraint(
            ["station_id"],
            ["police_stations.id"],
            name=op.f("fk_intel_reports_station_id_police_stations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_intel_reports")),
    )
    with op.batch_alter_table("intel_reports", schema=None) as batch_op:
        batch_op.create_index("ix_intel_reports_guard_id", ["guard_id"], unique=False)
        batch_op.create_index("ix_intel_reports_state", ["state"], unique=False)
        batch_op.create_index(
            "ix_intel_reports_station_id_state", ["station_id", "state"], unique=False
        )

    op.create_table(
        "broadcasts",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("text", sa.String(length=1000), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("radius_m", sa.Float(), nullable=False),
        sa.Column("expires_at", _TIME, nullable=False),
        sa.Column("station_id", sa.String(length=40), nullable=True),
        sa.Column("sender", sa.String(length=200), nullable=False),
        sa.Column("created_by", sa.String(length=80), nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["station_id"],
            ["police_stations.id"],
            name=op.f("fk_broadcasts_station_id_police_stations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_broadcasts")),
    )
    with op.batch_alter_table("broadcasts", schema=None) as batch_op:
        batch_op.create_index("ix_broadcasts_expires_at", ["expires_at"], unique=False)
        batch_op.create_index("ix_broadcasts_station_id", ["station_id"], unique=False)

    op.create_table(
        "broadcast_recipients",
        sa.Column("broadcast_id", sa.String(length=40), nullable=False),
        sa.Column("guard_id", sa.String(length=40), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=True),
        sa.Column("queued_at", _TIME, nullable=False),
        sa.Column("delivered_at", _TIME, nullable=True),
        sa.ForeignKeyConstraint(
            ["broadcast_id"],
            ["broadcasts.id"],
            name=op.f("fk_broadcast_recipients_broadcast_id_broadcasts"),
        ),
        sa.ForeignKeyConstraint(
            ["guard_id"], ["guards.id"], name=op.f("fk_broadcast_recipients_guard_id_guards")
        ),
        sa.PrimaryKeyConstraint("broadcast_id", "guard_id", name=op.f("pk_broadcast_recipients")),
    )


def downgrade() -> None:
    op.drop_table("broadcast_recipients")
    with op.batch_alter_table("broadcasts", schema=None) as batch_op:
        batch_op.drop_index("ix_broadcasts_station_id")
        batch_op.drop_index("ix_broadcasts_expires_at")
    op.drop_table("broadcasts")
    with op.batch_alter_table("intel_reports", schema=None) as batch_op:
        batch_op.drop_index("ix_intel_reports_station_id_state")
        batch_op.drop_index("ix_intel_reports_state")
        batch_op.drop_index("ix_intel_reports_guard_id")
    op.drop_table("intel_reports")
