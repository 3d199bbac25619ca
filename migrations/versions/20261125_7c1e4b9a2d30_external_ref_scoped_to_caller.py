"""external_ref scoped to the caller

Revision ID: 7c1e4b9a2d30
Revises: 05d8bc0b8382
Create Date: 2026-11-25 17:00:00.000000

De-duplication on (source, external_ref) let one caller read another's incident by posting
its reference, and squat references so the real one was dropped. The key becomes
(caller, source, external_ref); existing rows take their creator as their caller.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "7c1e4b9a2d30"
down_revision: str | None = "05d8bc0b8382"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("caller", sa.String(length=64), nullable=True))
    op.execute("UPDATE incidents SET caller = created_by")
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.alter_column("caller", existing_type=sa.String(length=64), nullable=False)
        batch_op.drop_constraint("uq_incidents_source_external_ref", type_="unique")
        batch_op.create_unique_constraint(
            "uq_incidents_caller_source_external_ref", ["caller", "source", "external_ref"]
        )


def downgrade() -> None:
    clashes = op.get_bind().scalar(
        sa.text(
            "SELECT count(*) FROM (SELECT source, external_ref FROM incidents "
            "WHERE external_ref IS NOT NULL GROUP BY source, external_ref "
            "HAVING count(*) > 1) AS shared"
        )
    )
    if clashes:
        # A global key cannot hold them; dropping or renaming a caller's reference would
        # break that caller's de-duplication silently.
        raise RuntimeError(
            f"{clashes} (source, external_ref) pairs are used by more than one caller; "
            "resolve them before downgrading below 7c1e4b9a2d30"
        )
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.drop_constraint("uq_incidents_caller_source_external_ref", type_="unique")
        batch_op.create_unique_constraint(
            "uq_incidents_source_external_ref", ["source", "external_ref"]
        )
        batch_op.drop_column("caller")
