"""One Alembic history: upgrade from empty, no drift against the models, downgrade, again."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import create_async_engine

from app.migrate import alembic_config, downgrade, upgrade
from app.models import Base
from tests.conftest import PG_URL
from tests.harness import fresh_database


async def _tables(url: str) -> set[str]:
    engine = create_async_engine(url)
    async with engine.connect() as connection:
        names = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
    await engine.dispose()
    return names


def _check(url: str) -> None:
    command.check(alembic_config(url))  # raises when autogenerate would find a diff


async def test_upgrade_check_downgrade_round_trip(backend: str, tmp_path: Path) -> None:
    async with fresh_database(backend, PG_URL, tmp_path) as url:
        assert set(Base.metadata.tables) <= await _tables(url)
        await asyncio.to_thread(_check, url)
        await asyncio.to_thread(downgrade, url, "base")
        assert await _tables(url) <= {"alembic_version"}
        await asyncio.to_thread(upgrade, url)
        await asyncio.to_thread(_check, url)
