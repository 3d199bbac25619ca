"""supervision: points ledger, police feedback, expiry notices, guards.left_on

Revision ID: 9f3b6c1d2e85
Revises: d8a41f6c2e93
Create Date: 2026-11-27 12:00:00.000000

Guards who left a company get `left_on` (staff turnover). The recognition ledger is
append-only; `feedback` holds supervisors' commendations and complaints; `expiry_notices`
remembers which licence and certificate warnings were sent.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.models.types

revision: str = "9f3b6c1d2e85"
down_revision: str | None = "d8a41f6c2e93"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("guards", schema=None) as batch_op:
        batch_op.add_column(sa.Column("left_on", sa.Date(), nullable=True))

    op.create_table(
        "point_awards",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("guard_id", sa.String(length=40), nullable=False),
        sa.Column("company_id", sa.String(length=40), nullable=False),
        sa.Column("station_id", sa.String(length=40), nullable=True),
        sa.Column("incident_id", sa.String(length=40), nullable=True),
        sa.Column("rule", sa.String(length=32), nullable=False),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=300), nullable=False),
        sa.Column("ref", sa.String(length=40), nullable=False),
        sa.Column("at", app.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["security_companies.id"],
            name=op.f("fk_point_awards_company_id_security_companies"),
        ),
        sa.ForeignKeyConstraint(
            ["guard_id"], ["guards.id"], name=op.f("fk_point_awards_guard_id_guards")
        ),
        sa.ForeignKeyConstraint(
            ["incident_id"], ["incidents.id"], name=op.f("fk_point_awards_incident_id_incidents")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_point_awards")),
        sa.UniqueConstraint(
            "guard_id", "rule", "ref", name=op.f("uq_point_awards_guard_id_rule_ref")
        ),
    )
    op.create_index("ix_point_awards_guard_id_at", "point_awards", ["guard_id", "at"])
    op.create_index("ix_point_awards_company_id_at", "point_awards", ["company_id", "at"])
    op.create_index("ix_point_awards_station_id_at", "point_awards", ["station_id", "at"])

    op.create_table(
        "feedback",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("incident_id", sa.String(length=40), nullable=False),
        sa.Column("guard_id", sa.String(length=40), nullable=False),
        sa.Column("company_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=80), nullable=False),
        sa.Column("created_at", app.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["security_companies.id"],
            name=op.f("fk_feedback_company_id_security_companies"),
        ),
        sa.ForeignKeyConstraint(
            ["guard_id"], ["guards.id"], name=op.f("fk_feedback_guard_id_guards")
        ),
        sa.ForeignKeyConstraint(
            ["incident_id"], ["incidents.id"], name=op.f("fk_feedback_incident_id_incidents")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback")),
    )
    op.create_index("ix_feedback_incident_id", "feedback", ["incident_id"])
    op.create_index("ix_feedback_guard_id", "feedback", ["guard_id"])
    op.create_index("ix_feedback_company_id_created_at", "feedback", ["company_id", "created_at"])

    op.create_table(
        "expiry_notices",
        sa.Column("subject_kind", sa.String(length=16), nullable=False),
        sa.Column("subject_id", sa.String(length=40), nullable=False),
        sa.Column("expires_on", sa.Date(), nullable=False),
        sa.Column("threshold_days", sa.Integer(), nullable=False),
        sa.Column("noticed_at", app.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "subject_kind",
            "subject_id",
            "expires_on",
            "threshold_days",
            name=op.f("pk_expiry_notices"),
        ),
    )


def downgrade() -> None:
    op.drop_table("expiry_notices")
    op.drop_index("ix_feedback_company_id_created_at", table_name="feedback")
    op.drop_index("ix_feedback_guard_id", table_name="feedback")
    op.drop_index("ix_feedback_incident_id", table_name="feedback")
    op.drop_table("feedback")
    op.drop_index("ix_point_awards_station_id_at", table_name="point_awards")
    op.drop_index("ix_point_awards_company_id_at", table_name="point_awards")
    op.drop_index("ix_point_awards_guard_id_at", table_name="point_awards")
    op.drop_table("point_awards")
    with op.batch_alter_table("guards", schema=None) as batch_op:
        batch_op.drop_column("left_on")
