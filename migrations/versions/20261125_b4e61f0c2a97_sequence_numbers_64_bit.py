"""sequence numbers 64-bit

Revision ID: b4e61f0c2a97
Revises: 7c1e4b9a2d30
Create Date: 2026-11-25 18:00:00.000000

The guard protocol numbers frames up to 2^63-1 (acks and resume points are checked
against that), but guard_channels.last_seq / acked_seq and guard_messages.seq were 32-bit
on PostgreSQL: a guard past 2^31-1 frames could no longer be sent anything. SQLite's
INTEGER is already 64-bit; there the batch rebuild only changes the declared type.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b4e61f0c2a97"
down_revision: str | None = "7c1e4b9a2d30"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = {"guard_channels": ("last_seq", "acked_seq"), "guard_messages": ("seq",)}
INT32_MAX = 2**31 - 1


def upgrade() -> None:
    for table, columns in COLUMNS.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column in columns:
                batch_op.alter_column(
                    column,
                    existing_type=sa.Integer(),
                    type_=sa.BigInteger(),
                    existing_nullable=False,
                )


def downgrade() -> None:
    bind = op.get_bind()
    for table, columns in COLUMNS.items():
        for column in columns:
            too_big = bind.scalar(
                sa.text(f"SELECT count(*) FROM {table} WHERE {column} > {INT32_MAX}")
            )
            if too_big:
                # Truncating a sequence number would resend or skip a guard's frames.
                raise RuntimeError(
                    f"{too_big} rows of {table}.{column} exceed 32 bits; "
                    "they cannot be downgraded below b4e61f0c2a97"
                )
    for table, columns in COLUMNS.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column in columns:
                batch_op.alter_column(
                    column,
                    existing_type=sa.BigInteger(),
                    type_=sa.Integer(),
                    existing_nullable=False,
                )
