"""Location privacy: nothing kept or shown while a guard is off duty, history purged after
the retention, and every read of a guard's track audited."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from sqlalchemy import func, insert, select

from app import housekeeping
from app.clock import isoformat
from app.dispatch import roster
from app.models import GuardPresence, PositionHistory
from tests.harness import Harness
from tests.phones import Phone, guard_at, offset

pytestmark = pytest.mark.usefixtures("backend")


async def presence(harness: Harness, guard_id: str) -> GuardPresence | None:
    async with harness.ctx.db.transaction(readonly=True) as session:
        return await session.get(GuardPresence, guard_id)


async def history_count(harness: Harness, guard_id: str) -> int:
    async with harness.ctx.db.transaction(readonly=True) as session:
        return int(
            await session.scalar(select(func.count()).where(PositionHistory.guard_id == guard_id))
            or 0
        )


async def shown(harness: Harness, area: tuple[float, float], guard_id: str) -> dict[str, bool]:
    """Where the guard appears: the consoles' snapshot, /guards/nearby."""
    lat, lon = area
    bbox = f"{lon - 0.05},{lat - 0.05},{lon + 0.05},{lat + 0.05}"
    positions = (await harness.get("/api/v1/guards/positions", params={"bbox": bbox})).json()
    nearby = (
        await harness.get(
            "/api/v1/guards/nearby", params={"lat": lat, "lon": lon, "radius_m": 2000}
        )
    ).json()
    return {
        "positions": guard_id in {i["guard_id"] for i in positions["items"]},
        "nearby": guard_id in {i["guard"]["id"] for i in nearby["items"]},
    }


async def off_duty(phone: Phone) -> None:
    await phone.send({"type": "duty", "on": False})
    await phone.expect("duty.updated", on=False)


async def test_going_off_duty_clears_the_last_position_everywhere(
    harness: Harness, area: tuple[float, float]
) -> None:
    phone = await guard_at(harness, area)
    await harness.ctx.positions.flush()
    stored = await presence(harness, phone.id)
    assert stored is not None and stored.lat is not None
    assert await shown(harness, area, phone.id) == {"positions": True, "nearby": True}

    harness.clock.advance(2)
    await phone.locate(*offset(area, north_m=30))  # waiting to be written behind…
    await phone.sync()
    await off_duty(phone)  # …when duty ends
    await harness.ctx.positions.flush()
    await harness.settle()  # with replicas: every replica's index has heard

    stored = await presence(harness, phone.id)
    assert stored is not None and not stored.on_duty
    assert (stored.lat, stored.lon, stored.accuracy_m, stored.located_at, stored.seen_at) == (
        None,
        None,
        None,
        None,
        None,
    )
    entry = harness.ctx.live.get(phone.id)
    assert entry is not None and not entry.on_duty
    assert (entry.lat, entry.lon, entry.located_at, entry.seen_at) == (0.0, 0.0, 0.0, 0.0)
    assert await shown(harness, area, phone.id) == {"positions": False, "nearby": False}
    await phone.close()


async def test_pings_off_duty_are_refused_and_nothing_is_stored(
    harness: Harness, area: tuple[float, float]
) -> None:
    phone = await guard_at(harness, area)
    await harness.ctx.positions.flush()
    before = await history_count(harness, phone.id)
    await off_duty(phone)
    harness.clock.advance(20)
    await phone.locate(*offset(area, north_m=50))
    error = await phone.expect("error")
    assert error["code"] == "off_duty" and "duty" in error["message"]
    await harness.ctx.positions.flush()
    stored = await presence(harness, phone.id)
    assert stored is not None and stored.lat is None
    assert await history_count(harness, phone.id) == before
    assert await shown(harness, area, phone.id) == {"positions": False, "nearby": False}

    # Back on duty it is shown again only once it says where it is.
    await phone.send({"type": "duty", "on": True})
    await phone.expect("duty.updated", on=True)
    assert await shown(harness, area, phone.id) == {"positions": False, "nearby": False}
    harness.clock.advance(1)
    await phone.locate(*area)
    await phone.sync()
    assert await shown(harness, area, phone.id) == {"positions": True, "nearby": True}
    await phone.close()


async def test_a_late_write_behind_never_puts_a_position_back(
    harness: Harness, area: tuple[float, float]
) -> None:
    """A flush that read the position before duty ended and writes after: refused by the
    database (the upsert only touches an on-duty row)."""
    phone = await guard_at(harness, area)
    await harness.ctx.positions.flush()
    await off_duty(phone)
    late = {
        "guard_id": phone.id,
        "on_duty": True,
        "lat": area[0],
        "lon": area[1],
        "accuracy_m": 5.0,
        "heading": None,
        "speed_mps": None,
        "located_at": harness.now(),
        "seen_at": harness.now(),
    }
    await harness.ctx.positions._write_latest([late])
    stored = await presence(harness, phone.id)
    assert stored is not None and not stored.on_duty and stored.lat is None
    await phone.close()


async def test_a_restart_restores_no_position_for_an_off_duty_guard(
    harness: Harness, area: tuple[float, float]
) -> None:
    """A position stored before this rule (the migration clears those too) is not put back
    into the live index when the guard is loaded."""
    guard = await harness.make_guard()
    async with harness.ctx.db.transaction(serial=False) as session:
        session.add(
            GuardPresence(
                guard_id=guard["id"],
                on_duty=False,
                lat=area[0],
                lon=area[1],
                located_at=harness.now(),
                seen_at=harness.now(),
            )
        )
    entry = await roster.load_guard(harness.ctx, guard["id"])
    assert entry is not None and not entry.on_duty and entry.located_at == 0.0
    assert await shown(harness, area, guard["id"]) == {"positions": False, "nearby": False}


# Retention -------------------------------------------------------------------------------


async def _old_and_new_history(harness: Harness) -> str:
    guard = await harness.make_guard()
    now = harness.now()
    retention = dt.timedelta(hours=harness.ctx.settings.position_history_retention_h)
    async with harness.ctx.db.transaction(serial=False) as session:
        await session.execute(
            insert(PositionHistory),
            [
                {"guard_id": guard["id"], "lat": 39.1, "lon": 117.2, "located_at": now - age}
                for age in (retention + dt.timedelta(minutes=1), retention / 2)
            ],
        )
    return str(guard["id"])


async def test_the_prune_pass_purges_history_past_the_retention(harness: Harness) -> None:
    guard_id = await _old_and_new_history(harness)
    await housekeeping.prune(harness.ctx)
    assert await history_count(harness, guard_id) == 1


async def test_the_prune_loop_runs_soon_after_start(harness: Harness) -> None:
    """The loop the server starts prunes shortly after start (then every 10 minutes), so
    a server restarted often still purges."""
    guard_id = await _old_and_new_history(harness)
    loop = asyncio.create_task(housekeeping.prune_loop(harness.ctx, first_after_s=0.01))
    try:
        async with asyncio.timeout(10):
            while await history_count(harness, guard_id) != 1:
                await asyncio.sleep(0.05)
    finally:
        loop.cancel()
    assert housekeeping.PRUNE_FIRST_AFTER_S <= 60


# Reading a guard's track -----------------------------------------------------------------


async def test_a_track_read_is_audited_with_who_whose_and_which_window(
    harness: Harness,
) -> None:
    guard = await harness.make_guard()
    now = harness.now()
    async with harness.ctx.db.transaction(serial=False) as session:
        await session.execute(
            insert(PositionHistory),
            [
                {
                    "guard_id": guard["id"],
                    "lat": [39.1, 39.101, 39.102][n],
                    "lon": 117.2,
                    "accuracy_m": 5.0,
                    "located_at": now - dt.timedelta(minutes=30 - n),
                }
                for n in range(3)
            ],
        )
    since = isoformat(now - dt.timedelta(hours=1))
    response = await harness.client.get(
        f"/api/v1/guards/{guard['id']}/track",
        params={"since": since},
        headers=await harness.headers("supervisor"),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert [p["lat"] for p in body["points"]] == [39.1, 39.101, 39.102]
    assert body["since"] == since and body["until"] == isoformat(now)
    assert body["truncated"] is False

    me = (await harness.get("/api/v1/auth/me", role="supervisor")).json()
    records = (
        await harness.get(
            "/api/v1/audit",
            params={"type": "positions.track_read", "subject": f"guard:{guard['id']}"},
        )
    ).json()["items"]
    assert len(records) == 1
    (record,) = records
    assert record["actor"] == f"user:{me['id']}" and record["address"] == "127.0.0.1"
    assert record["data"] == {
        "guard_id": guard["id"],
        "since": since,
        "until": isoformat(now),
        "points": 3,
    }


async def test_a_company_manager_reads_only_their_own_guards_track(harness: Harness) -> None:
    ours, theirs = await harness.make_company(), await harness.make_company()
    own_guard = await harness.make_guard(ours["id"])
    other_guard = await harness.make_guard(theirs["id"])
    headers = await harness.headers("company_manager", company_id=ours["id"])
    since = isoformat(harness.now() - dt.timedelta(hours=2))
    mine = await harness.client.get(
        f"/api/v1/guards/{own_guard['id']}/track", params={"since": since}, headers=headers
    )
    assert mine.status_code == 200
    other = await harness.client.get(
        f"/api/v1/guards/{other_guard['id']}/track", params={"since": since}, headers=headers
    )
    missing = await harness.client.get(
        "/api/v1/guards/grd_missing/track", params={"since": since}, headers=headers
    )
    assert other.status_code == missing.status_code == 404
    assert other.json()["error"]["message"].replace(other_guard["id"], "X") == missing.json()[
        "error"
    ]["message"].replace("grd_missing", "X")
    operator = await harness.client.get(
        f"/api/v1/guards/{own_guard['id']}/track",
        params={"since": since},
        headers=await harness.headers("operator"),
    )
    assert operator.status_code == 403
    reads = (
        await harness.get(
            "/api/v1/audit",
            params={"type": "positions.track_read", "subject": f"guard:{other_guard['id']}"},
        )
    ).json()["items"]
    assert reads == []  # nothing was read


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"since": "2026-01-01T00:00:00"}, "since"),  # no timezone
        ({"since": "2026-01-01T00:00:00Z", "until": "2026-01-03T00:00:00Z"}, "since"),  # > 24 h
        ({"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "until"),
        ({}, "since"),
    ],
)
async def test_the_window_is_bounded(harness: Harness, params: dict[str, str], field: str) -> None:
    guard = await harness.make_guard()
    response = await harness.get(f"/api/v1/guards/{guard['id']}/track", params=params)
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == field


async def test_limit_truncates_the_track(harness: Harness) -> None:
    guard = await harness.make_guard()
    now = harness.now()
    async with harness.ctx.db.transaction(serial=False) as session:
        await session.execute(
            insert(PositionHistory),
            [
                {
                    "guard_id": guard["id"],
                    "lat": 39.1,
                    "lon": 117.2,
                    "located_at": now - dt.timedelta(minutes=n),
                }
                for n in range(1, 6)
            ],
        )
    response = await harness.get(
        f"/api/v1/guards/{guard['id']}/track",
        params={"since": isoformat(now - dt.timedelta(hours=1)), "limit": 2},
    )
    body = response.json()
    assert len(body["points"]) == 2 and body["truncated"] is True
    assert body["points"][0]["at"] < body["points"][1]["at"]
