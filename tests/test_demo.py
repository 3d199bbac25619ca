"""The demo city seeds once, completely, and is dispatchable right after seeding."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.demo.seed import seed_demo
from app.models import Guard, GuardPresence, PoliceStation, SecurityCompany, User
from tests.harness import Harness

pytestmark = pytest.mark.usefixtures("backend")


async def counts(harness: Harness) -> dict[str, int]:
    async with harness.ctx.db.transaction(readonly=True) as session:
        return {
            model.__tablename__: int(
                await session.scalar(select(func.count()).select_from(model)) or 0
            )
            for model in (Guard, GuardPresence, PoliceStation, SecurityCompany, User)
        }


async def test_seed_demo_is_idempotent_and_believable(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    before = await counts(harness)
    await seed_demo(harness.ctx)
    first = capsys.readouterr().out
    after = await counts(harness)
    assert after["guards"] - before["guards"] == 200
    assert after["guard_presence"] - before["guard_presence"] == 200
    assert after["police_stations"] - before["police_stations"] == 6
    assert after["security_companies"] - before["security_companies"] == 3
    assert "demo-operator-pass" in first and "gdt_" in first and "key_" in first
    await seed_demo(harness.ctx)
    assert "already seeded" in capsys.readouterr().out
    assert await counts(harness) == after
    # The seeded position of guards is in the database; an incident downtown finds a station.
    incident = await harness.make_incident((39.1172, 117.2005), category="theft", priority=3)
    async with harness.ctx.db.transaction(readonly=True) as session:
        station = await session.get(PoliceStation, incident["station_id"])
    assert station is not None and "Heping" in station.name
