"""incident exercise flag

Revision ID: c3f9d2e7a4b1
Revises: 5e2a9c7d1b48
Create Date: 2026-11-26 12:00:00.000000

`incidents.exercise`: a drill runs end to end like any incident, and everything it sends
says so (frames, events, webhooks, CAP `<status>Exercise</status>`). Existing incidents
were real: false. Indexed for reports, which leave drills out.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c3f9d2e7a4b1"
down_revision: str | None = "5e2a9c7d1b48"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("exercise", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.create_index("ix_incidents_exercise", ["exercise"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.drop_index("ix_incidents_exercise")
        batch_op.drop_column("exercise")
