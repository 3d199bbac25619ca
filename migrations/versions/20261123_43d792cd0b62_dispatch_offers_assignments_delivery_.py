"""dispatch offers assignments delivery timers

Revision ID: 43d792cd0b62
Revises: c96e5b506cec
Create Date: 2026-11-23 07:41:50.413964
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import app.models.types

revision: str = "43d792cd0b62"
down_revision: str | None = "c96e5b506cec"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "timers",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("subject_id", sa.String(length=40), nullable=False),
        sa.Column("due_at", app.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_timers")),
        sa.UniqueConstraint("kind", "subject_id", name=op.f("uq_timers_kind_subject_id")),
    )
    with op.batch_alter_table("timers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_timers_due_at"), ["due_at"], unique=False)

    op.create_table(
        "guard_channels",
        sa.Column("guard_id", sa.String(length=40), nullable=False),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.Column("acked_seq", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["guard_id"], ["guards.id"], name=op.f("fk_guard_channels_guard_id_guards")
        ),
        sa.PrimaryKeyConstraint("guard_id", name=op.f("pk_guard_channels")),
    )
    op.create_table(
        "guard_engagements",
        sa.Column("guard_id", sa.String(length=40), nullable=False),
        sa.Column("incident_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("ref_id", sa.String(length=40), nullable=False),
        sa.Column("since", app.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["guard_id"], ["guards.id"], name=op.f("fk_guard_engagements_guard_id_guards")
        ),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
            name=op.f("fk_guard_engagements_incident_id_incidents"),
        ),
        sa.PrimaryKeyConstraint("guard_id", name=op.f("pk_guard_engagements")),
    )
    with op.batch_alter_table("guard_engagements", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_guard_engagements_incident_id"), ["incident_id"], unique=False
        )

    op.create_table(
        "guard_messages",
        sa.Column("guard_id", sa.String(length=40), nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column(
            "frame", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column("created_at", app.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["guard_id"], ["guards.id"], name=op.f("fk_guard_messages_guard_id_guards")
        ),
        sa.PrimaryKeyConstraint("guard_id", "seq", name=op.f("pk_guard_messages")),
    )
    with op.batch_alter_table("guard_messages", schema=None) as batch_op:
        batch_op.create_index("ix_guard_messages_created_at", ["created_at"], unique=False)

    op.create_table(
        "offers",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("incident_id", sa.String(length=40), nullable=False),
        sa.Column("guard_id", sa.String(length=40), nullable=False),
        sa.Column("wave", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("distance_m", sa.Float(), nullable=False),
        sa.Column("eta_s", sa.Float(), nullable=False),
        sa.Column("travel_mode", sa.String(length=16), nullable=False),
        sa.Column("offered_at", app.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", app.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("responded_at", app.models.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["guard_id"], ["guards.id"], name=op.f("fk_offers_guard_id_guards")
        ),
        sa.ForeignKeyConstraint(
            ["incident_id"], ["incidents.id"], name=op.f("fk_offers_incident_id_incidents")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_offers")),
    )
    with op.batch_alter_table("offers", schema=None) as batch_op:
        batch_op.create_index("ix_offers_guard_id", ["guard_id"], unique=False)
        batch_op.create_index(
            "ix_offers_incident_id_outcome", ["incident_id", "outcome"], unique=False
        )

    op.create_table(
        "assignments",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("incident_id", sa.String(length=40), nullable=False),
        sa.Column("guard_id", sa.String(length=40), nullable=False),
        sa.Column("offer_id", sa.String(length=40), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("assigned_at", app.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("on_scene_at", app.models.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("cleared_at", app.models.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("note", sa.String(length=2000), nullable=True),
        sa.ForeignKeyConstraint(
            ["guard_id"], ["guards.id"], name=op.f("fk_assignments_guard_id_guards")
        ),
        sa.ForeignKeyConstraint(
            ["incident_id"], ["incidents.id"], name=op.f("fk_assignments_incident_id_incidents")
        ),
        sa.ForeignKeyConstraint(
            ["offer_id"], ["offers.id"], name=op.f("fk_assignments_offer_id_offers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assignments")),
    )
    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.create_index("ix_assignments_guard_id", ["guard_id"], unique=False)
        batch_op.create_index("ix_assignments_incident_id", ["incident_id"], unique=False)

    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("assigned_count", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("wave", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.drop_column("wave")
        batch_op.drop_column("assigned_count")

    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.drop_index("ix_assignments_incident_id")
        batch_op.drop_index("ix_assignments_guard_id")

    op.drop_table("assignments")
    with op.batch_alter_table("offers", schema=None) as batch_op:
        batch_op.drop_index("ix_offers_incident_id_outcome")
        batch_op.drop_index("ix_offers_guard_id")

    op.drop_table("offers")
    with op.batch_alter_table("guard_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_guard_messages_created_at")

    op.drop_table("guard_messages")
    with op.batch_alter_table("guard_engagements", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_guard_engagements_incident_id"))

    op.drop_table("guard_engagements")
    op.drop_table("guard_channels")
    with op.batch_alter_table("timers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_timers_due_at"))

    op.drop_table("timers")
