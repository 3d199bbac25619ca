"""The migration that scopes external_ref to the caller keeps existing incidents, gives
them their creator as caller, and refuses to downgrade over references two callers share."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.migrate import alembic_config, downgrade, upgrade
from tests.conftest import PG_URL
from tests.harness import fresh_database

BEFORE = "05d8bc0b8382"
SCOPED = "7c1e4b9a2d30"

INSERT = text(
    "INSERT INTO incidents (id, source, category, priority, lat, lon, description, "
    "external_ref, required_guards, status, unstaffed, created_by, created_at, updated_at"
    "{caller_column}) VALUES (:id, 'police', 'theft', 3, 39.1, 117.2, 'x', :ref, 1, 'new', "
    ":false, :by, '2026-11-01 00:00:00', '2026-11-01 00:00:00'{caller_value})"
)


async def _execute(url: str, statement: Any, **params: Any) -> list[Any]:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            result = await connection.execute(statement, {"false": False, **params})
            return list(result.all()) if result.returns_rows else []
    finally:
        await engine.dispose()


async def _downgrade_on_own_connection(url: str, revision: str) -> None:
    """Downgrade on a connection this test owns, so a migration that raises leaves no
    engine behind (migrations/env.py only disposes its own on success)."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:

            def run(sync_connection: Any) -> None:
                config = alembic_config(url)
                config.attributes["connection"] = sync_connection
                command.downgrade(config, revision)

            await connection.run_sync(run)
    finally:
        await engine.dispose()


def _insert(with_caller: bool) -> Any:
    return text(
        INSERT.text.format(
            caller_column=", caller" if with_caller else "",
            caller_value=", :by" if with_caller else "",
        )
    )


async def test_existing_incidents_take_their_creator_as_caller(
    backend: str, tmp_path: Path
) -> None:
    async with fresh_database(backend, PG_URL, tmp_path) as url:
        await asyncio.to_thread(downgrade, url, BEFORE)
        await _execute(url, _insert(False), id="inc_old", ref="CAD-1", by="api_key:key_a")
        await asyncio.to_thread(upgrade, url, SCOPED)

        rows = await _execute(url, text("SELECT id, caller, external_ref FROM incidents"))
        assert [tuple(r) for r in rows] == [("inc_old", "api_key:key_a", "CAD-1")]

        # Another caller may now use the same reference; the same caller still may not.
        await _execute(url, _insert(True), id="inc_other", ref="CAD-1", by="api_key:key_b")
        with pytest.raises(Exception, match="(?i)unique"):
            await _execute(url, _insert(True), id="inc_dup", ref="CAD-1", by="api_key:key_a")

        with pytest.raises(RuntimeError, match="more than one caller"):
            await _downgrade_on_own_connection(url, BEFORE)
        await _execute(url, text("DELETE FROM incidents WHERE id = 'inc_other'"))
        await asyncio.to_thread(downgrade, url, BEFORE)
        rows = await _execute(url, text("SELECT id, external_ref FROM incidents"))
        assert [tuple(r) for r in rows] == [("inc_old", "CAD-1")]
