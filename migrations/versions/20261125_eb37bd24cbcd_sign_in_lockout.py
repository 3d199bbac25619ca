"""sign-in lockout

Revision ID: eb37bd24cbcd
Revises: b4e61f0c2a97
Create Date: 2026-11-25 19:15:00.000000

Account lockout (CJIS AC-7) survives a restart: each user keeps the times of its recent
failed sign-ins (at most the lockout threshold, within the lockout window) and, while
locked, when the lock lifts by itself.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import app.models.types

revision: str = "eb37bd24cbcd"
down_revision: str | None = "b4e61f0c2a97"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("failed_logins", _JSON, nullable=True))
        batch_op.add_column(
            sa.Column("locked_until", app.models.types.UTCDateTime(timezone=True), nullable=True)
        )
    op.execute("UPDATE users SET failed_logins = '[]'")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.alter_column("failed_logins", existing_type=_JSON, nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("locked_until")
        batch_op.drop_column("failed_logins")
