"""Guard frame sequence numbers use the protocol's whole range (up to 2^63-1) on both databases."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import BigInteger, inspect
from sqlalchemy.ext.asyncio import create_async_engine

from app.models import GuardChannel, GuardMessage
from app.realtime import outbox
from tests.conftest import PG_URL
from tests.harness import Harness, fresh_database

pytestmark = pytest.mark.usefixtures("backend")

SEQ_COLUMNS = {"guard_channels": ("last_seq", "acked_seq"), "guard_messages": ("seq",)}


async def test_a_channel_past_32_bits_still_stores_and_replays(harness: Harness) -> None:
    guard = await harness.make_guard()
    newest = 2**63 - 1  # the largest seq the protocol accepts
    async with harness.ctx.db.transaction() as session:
        await session.merge(GuardChannel(guard_id=guard["id"], last_seq=newest, acked_seq=2**31))
        session.add(
            GuardMessage(
                guard_id=guard["id"],
                seq=newest,
                frame={"type": "instruction", "seq": newest, "text": "far along"},
                created_at=harness.now(),
            )
        )
    async with harness.ctx.db.transaction(serial=False) as session:
        await outbox.acknowledge(session, guard["id"], newest - 1)
    async with harness.ctx.db.transaction(readonly=True) as session:
        assert await outbox.channel_state(session, guard["id"]) == (newest, newest - 1)
        acked, page = await outbox.pending(session, guard["id"], newest - 1, 10)
    assert acked == newest - 1
    assert [frame["seq"] for frame in page] == [newest]


async def test_migrated_sequence_columns_are_64_bit(backend: str, tmp_path: Path) -> None:
    async with fresh_database(backend, PG_URL, tmp_path) as url:
        engine = create_async_engine(url)
        async with engine.connect() as connection:
            types = await connection.run_sync(
                lambda c: {
                    (table, column["name"]): column["type"]
                    for table in SEQ_COLUMNS
                    for column in inspect(c).get_columns(table)
                }
            )
        await engine.dispose()
    for table, columns in SEQ_COLUMNS.items():
        for column in columns:
            assert isinstance(types[table, column], BigInteger), (table, column)
