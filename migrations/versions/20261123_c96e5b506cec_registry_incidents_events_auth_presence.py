"""registry incidents events auth presence

Revision ID: c96e5b506cec
Revises:
Create Date: 2026-11-23 07:35:59.986644
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import app.models.types

revision: str = "c96e5b506cec"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "police_stations",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "jurisdiction", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column("contact_phone", sa.String(length=32), nullable=True),
        sa.Column("created_at", app.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", app.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_police_stations")),
        sa.UniqueConstraint("name", name=op.f("uq_police_stations_name")),
    )
    op.create_table(
        "security_companies",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("licence_no", sa.String(length=64), nullable=False),
        sa.Column("licence_expires_on", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", app.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", app.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_security_companies")),
        sa.UniqueConstraint("licence_no", name=op.f("uq_security_companies_licence_no")),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column(
            "scopes", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column("station_id", sa.String(length=40), nullable=True),
        sa.Column("created_at", app.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", app.models.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["station_id"],
            ["police_stations.id"],
            name=op.f("fk_api_keys_station_id_police_stations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
    )
    op.create_table(
        "guards",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("company_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("badge_no", sa.String(length=64), nullable=False),
        sa.Column("phone", sa.String(length=32), nullable=True),
        sa.Column(
            "skills", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column("certificate_expires_on", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", app.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", app.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["security_companies.id"],
            name=op.f("fk_guards_company_id_security_companies"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_guards")),
        sa.UniqueConstraint("badge_no", name=op.f("uq_guards_badge_no")),
    )
    with op.batch_alter_table("guards", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_guards_company_id"), ["company_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_guards_status"), ["status"], unique=False)

    op.create_table(
        "incidents",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("address", sa.String(length=500), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column(
            "reporter", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=True
        ),
        sa.Column("external_ref", sa.String(length=128), nullable=True),
        sa.Column("idempotency_scope", sa.String(length=64), nullable=True),
        sa.Column("idempotency_key", sa.String(length=128), nullable=True),
        sa.Column("request_hash", sa.String(length=64), nullable=True),
        sa.Column("required_guards", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("station_id", sa.String(length=40), nullable=True),
        sa.Column("station_match", sa.String(length=16), nullable=True),
        sa.Column("unstaffed", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("resolved_at", app.models.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("closed_at", app.models.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("cancelled_at", app.models.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", app.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", app.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["station_id"],
            ["police_stations.id"],
            name=op.f("fk_incidents_station_id_police_stations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incidents")),
        sa.UniqueConstraint(
            "idempotency_scope",
            "idempotency_key",
            name=op.f("uq_incidents_idempotency_scope_idempotency_key"),
        ),
        sa.UniqueConstraint(
            "source", "external_ref", name=op.f("uq_incidents_source_external_ref")
        ),
    )
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.create_index("ix_incidents_created_at", ["created_at"], unique=False)
        batch_op.create_index("ix_incidents_lat_lon", ["lat", "lon"], unique=False)
        batch_op.create_index(batch_op.f("ix_incidents_station_id"), ["station_id"], unique=False)
        batch_op.create_index("ix_incidents_status_priority", ["status", "priority"], unique=False)

    op.create_table(
        "police_units",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("call_sign", sa.String(length=64), nullable=False),
        sa.Column("station_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("located_at", app.models.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", app.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", app.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["station_id"],
            ["police_stations.id"],
            name=op.f("fk_police_units_station_id_police_stations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_police_units")),
        sa.UniqueConstraint("call_sign", name=op.f("uq_police_units_call_sign")),
    )
    with op.batch_alter_table("police_units", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_police_units_station_id"), ["station_id"], unique=False
        )

    op.create_table(
        "users",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("company_id", sa.String(length=40), nullable=True),
        sa.Column("station_id", sa.String(length=40), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", app.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["security_companies.id"],
            name=op.f("fk_users_company_id_security_companies"),
        ),
        sa.ForeignKeyConstraint(
            ["station_id"], ["police_stations.id"], name=op.f("fk_users_station_id_police_stations")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
    )
    op.create_table(
        "events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("incident_id", sa.String(length=40), nullable=True),
        sa.Column("station_id", sa.String(length=40), nullable=True),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("actor", sa.String(length=80), nullable=False),
        sa.Column("at", app.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("data", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"], ["incidents.id"], name=op.f("fk_events_incident_id_incidents")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_events_at"), ["at"], unique=False)
        batch_op.create_index("ix_events_incident_id_id", ["incident_id", "id"], unique=False)
        batch_op.create_index(batch_op.f("ix_events_station_id"), ["station_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_events_type"), ["type"], unique=False)

    op.create_table(
        "guard_presence",
        sa.Column("guard_id", sa.String(length=40), nullable=False),
        sa.Column("on_duty", sa.Boolean(), nullable=False),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("accuracy_m", sa.Float(), nullable=True),
        sa.Column("heading", sa.Float(), nullable=True),
        sa.Column("speed_mps", sa.Float(), nullable=True),
        sa.Column("located_at", app.models.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("seen_at", app.models.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["guard_id"], ["guards.id"], name=op.f("fk_guard_presence_guard_id_guards")
        ),
        sa.PrimaryKeyConstraint("guard_id", name=op.f("pk_guard_presence")),
    )
    op.create_table(
        "guard_tokens",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("guard_id", sa.String(length=40), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", app.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", app.models.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["guard_id"], ["guards.id"], name=op.f("fk_guard_tokens_guard_id_guards")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_guard_tokens")),
    )
    with op.batch_alter_table("guard_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_guard_tokens_guard_id"), ["guard_id"], unique=False)

    op.create_table(
        "position_history",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("guard_id", sa.String(length=40), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("accuracy_m", sa.Float(), nullable=True),
        sa.Column("located_at", app.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["guard_id"], ["guards.id"], name=op.f("fk_position_history_guard_id_guards")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_position_history")),
    )
    with op.batch_alter_table("position_history", schema=None) as batch_op:
        batch_op.create_index(
            "ix_position_history_guard_id_located_at", ["guard_id", "located_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_position_history_located_at"), ["located_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("position_history", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_position_history_located_at"))
        batch_op.drop_index("ix_position_history_guard_id_located_at")

    op.drop_table("position_history")
    with op.batch_alter_table("guard_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_guard_tokens_guard_id"))

    op.drop_table("guard_tokens")
    op.drop_table("guard_presence")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_events_type"))
        batch_op.drop_index(batch_op.f("ix_events_station_id"))
        batch_op.drop_index("ix_events_incident_id_id")
        batch_op.drop_index(batch_op.f("ix_events_at"))

    op.drop_table("events")
    op.drop_table("users")
    with op.batch_alter_table("police_units", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_police_units_station_id"))

    op.drop_table("police_units")
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.drop_index("ix_incidents_status_priority")
        batch_op.drop_index(batch_op.f("ix_incidents_station_id"))
        batch_op.drop_index("ix_incidents_lat_lon")
        batch_op.drop_index("ix_incidents_created_at")

    op.drop_table("incidents")
    with op.batch_alter_table("guards", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_guards_status"))
        batch_op.drop_index(batch_op.f("ix_guards_company_id"))

    op.drop_table("guards")
    op.drop_table("api_keys")
    op.drop_table("security_companies")
    op.drop_table("police_stations")
