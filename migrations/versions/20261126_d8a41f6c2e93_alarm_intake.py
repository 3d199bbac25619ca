"""alarm accounts and alarms

Revision ID: d8a41f6c2e93
Revises: c3f9d2e7a4b1
Create Date: 2026-11-26 12:00:00.000000

Alarm intake (issue 11 §3): the sites security companies monitor (alarm_accounts, one row
per account number) and every alarm received with its outcome (alarms). The partial
unique index uq_alarms_latch lets one latched (accepted, within the duplicate window)
alarm exist per account, zone and event code: the database settles duplicates.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.models.types

revision: str = "d8a41f6c2e93"
down_revision: str | None = "c3f9d2e7a4b1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TIME = app.models.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "alarm_accounts",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("company_id", sa.String(length=40), nullable=False),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("site_name", sa.String(length=200), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("station_id", sa.String(length=40), nullable=True),
        sa.Column("contacts", app.models.types.JSONType, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_by", sa.String(length=80), nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("updated_at", _TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["security_companies.id"],
            name=op.f("fk_alarm_accounts_company_id_security_companies"),
        ),
        sa.ForeignKeyConstraint(
            ["station_id"],
            ["police_stations.id"],
            name=op.f("fk_alarm_accounts_station_id_police_stations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alarm_accounts")),
        sa.UniqueConstraint("account", name=op.f("uq_alarm_accounts_account")),
    )
    with op.batch_alter_table("alarm_accounts", schema=None) as batch_op:
        batch_op.create_index("ix_alarm_accounts_company_id", ["company_id"], unique=False)
        batch_op.create_index("ix_alarm_accounts_station_id", ["station_id"], unique=False)

    op.create_table(
        "alarms",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.String(length=40), nullable=True),
        sa.Column("company_id", sa.String(length=40), nullable=True),
        sa.Column("station_id", sa.String(length=40), nullable=True),
        sa.Column("zone", sa.String(length=64), nullable=False),
        sa.Column("event_code", sa.String(length=16), nullable=False),
        sa.Column("verification", sa.String(length=8), nullable=False),
        sa.Column("description", sa.String(length=2000), nullable=True),
        sa.Column("occurred_at", _TIME, nullable=False),
        sa.Column("received_at", _TIME, nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=True),
        sa.Column("duplicate_of", sa.String(length=40), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=True),
        sa.Column("incident_id", sa.String(length=40), nullable=True),
        sa.Column("latched", sa.Boolean(), nullable=False),
        sa.Column("received_by", sa.String(length=80), nullable=False),
        sa.Column("cancelled_at", _TIME, nullable=True),
        sa.Column("cancel_reason", sa.String(length=32), nullable=True),
        sa.Column("cancelled_by", sa.String(length=80), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["alarm_accounts.id"], name=op.f("fk_alarms_account_id_alarm_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["security_companies.id"],
            name=op.f("fk_alarms_company_id_security_companies"),
        ),
        sa.ForeignKeyConstraint(
            ["incident_id"], ["incidents.id"], name=op.f("fk_alarms_incident_id_incidents")
        ),
        sa.ForeignKeyConstraint(
            ["station_id"],
            ["police_stations.id"],
            name=op.f("fk_alarms_station_id_police_stations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alarms")),
    )
    with op.batch_alter_table("alarms", schema=None) as batch_op:
        batch_op.create_index("ix_alarms_account_id", ["account_id"], unique=False)
        batch_op.create_index("ix_alarms_incident_id", ["incident_id"], unique=False)
        batch_op.create_index("ix_alarms_received_at", ["received_at"], unique=False)
        batch_op.create_index(
            "uq_alarms_latch",
            ["account_id", "zone", "event_code"],
            unique=True,
            sqlite_where=sa.text("latched"),
            postgresql_where=sa.text("latched"),
        )


def downgrade() -> None:
    with op.batch_alter_table("alarms", schema=None) as batch_op:
        batch_op.drop_index("uq_alarms_latch")
        batch_op.drop_index("ix_alarms_received_at")
        batch_op.drop_index("ix_alarms_incident_id")
        batch_op.drop_index("ix_alarms_account_id")
    op.drop_table("alarms")
    with op.batch_alter_table("alarm_accounts", schema=None) as batch_op:
        batch_op.drop_index("ix_alarm_accounts_station_id")
        batch_op.drop_index("ix_alarm_accounts_company_id")
    op.drop_table("alarm_accounts")
