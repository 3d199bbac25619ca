"""incident allowed tiers

Revision ID: 5e2a9c7d1b48
Revises: 5b8e2f7a91c3
Create Date: 2026-11-26 09:00:00.000000

The risk tiers guards may be asked to perform on an incident (observe_report,
secure_scene, first_aid, crowd_guidance, detain_until_police), stored at intake so a later
policy change does not rewrite history. Existing incidents take the tiers of the policy as
it stood at this revision (a frozen copy below, not an import of the code that may change).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "5e2a9c7d1b48"
down_revision: str | None = "5b8e2f7a91c3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_ORDER = ("observe_report", "secure_scene", "first_aid", "crowd_guidance", "detain_until_police")
_BY_CATEGORY = {
    "assault": {"observe_report", "secure_scene", "first_aid", "detain_until_police"},
    "robbery": {"observe_report", "secure_scene", "first_aid", "detain_until_police"},
    "theft": {"observe_report", "secure_scene", "detain_until_police"},
    "fire": {"observe_report", "secure_scene", "first_aid", "crowd_guidance"},
    "medical": {"observe_report", "first_aid", "crowd_guidance"},
    "disturbance": {"observe_report", "first_aid", "crowd_guidance"},
    "suspicious": {"observe_report"},
    "alarm": {"observe_report", "secure_scene"},
    "traffic": {"observe_report", "secure_scene", "first_aid", "crowd_guidance"},
    "missing_person": {"observe_report", "first_aid"},
    "other": {"observe_report", "secure_scene"},
}


def _tiers(category: str, priority: int) -> list[str]:
    if priority == 1 and category in ("robbery", "assault"):
        return ["observe_report"]  # beyond guard powers
    allowed = _BY_CATEGORY.get(category, {"observe_report"})
    if priority > 3:
        allowed = allowed - {"detain_until_police"}
    return [tier for tier in _ORDER if tier in allowed]


def upgrade() -> None:
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("allowed_tiers", _JSON, nullable=True))
    incidents = sa.table(
        "incidents",
        sa.column("category", sa.String()),
        sa.column("priority", sa.Integer()),
        sa.column("allowed_tiers", _JSON),
    )
    bind = op.get_bind()
    pairs = bind.execute(sa.select(incidents.c.category, incidents.c.priority).distinct()).all()
    for category, priority in pairs:
        bind.execute(
            incidents.update()
            .where(incidents.c.category == category, incidents.c.priority == priority)
            .values(allowed_tiers=_tiers(category, priority))
        )
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.alter_column("allowed_tiers", existing_type=_JSON, nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.drop_column("allowed_tiers")
