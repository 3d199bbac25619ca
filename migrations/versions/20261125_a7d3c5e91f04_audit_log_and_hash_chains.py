"""audit log and hash chains

Revision ID: a7d3c5e91f04
Revises: eb37bd24cbcd
Create Date: 2026-11-25 20:00:00.000000

The security audit log (audit_log), the sealed head of each hash chain (chain_heads), and
each event's place in its chain (events.chain_seq / chain_hash, empty until the sealer
links the row; existing events are sealed on the first pass after the upgrade). Off-duty
guards keep no last position: the ones stored before this revision are cleared.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import app.models.types

revision: str = "a7d3c5e91f04"
down_revision: str | None = "eb37bd24cbcd"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_POSITION = ("lat", "lon", "accuracy_m", "heading", "speed_mps", "located_at", "seen_at")


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("at", app.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("actor", sa.String(length=80), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=True),
        sa.Column("subject", sa.String(length=200), nullable=True),
        sa.Column("data", _JSON, nullable=False),
        sa.Column("chain_seq", sa.BigInteger(), nullable=True),
        sa.Column("chain_hash", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_log_at"), ["at"], unique=False)
        batch_op.create_index("ix_audit_log_type_id", ["type", "id"], unique=False)
        batch_op.create_index("ix_audit_log_actor_id", ["actor", "id"], unique=False)
        batch_op.create_index("ix_audit_log_subject_id", ["subject", "id"], unique=False)

    op.create_table(
        "chain_heads",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("last_id", sa.BigInteger(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.Column("sealed_at", app.models.types.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_chain_heads")),
    )

    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("chain_seq", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("chain_hash", sa.String(length=64), nullable=True))

    cleared = ", ".join(f"{column} = NULL" for column in _POSITION)
    op.execute(
        sa.text(f"UPDATE guard_presence SET {cleared} WHERE on_duty = :off").bindparams(off=False)
    )


def downgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_column("chain_hash")
        batch_op.drop_column("chain_seq")
    op.drop_table("chain_heads")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_log_subject_id")
        batch_op.drop_index("ix_audit_log_actor_id")
        batch_op.drop_index("ix_audit_log_type_id")
        batch_op.drop_index(batch_op.f("ix_audit_log_at"))
    op.drop_table("audit_log")
