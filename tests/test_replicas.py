"""Several replicas on one PostgreSQL: any replica serves any client (issue 13).

Two apps, each with its own uvicorn on its own port, share one database and one clock,
as two `python -m app serve` processes would. SQLite is one process: a second server on
the same file is refused.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from websockets.asyncio.client import connect

from app.clock import ManualClock
from app.cluster import replica
from app.context import AppContext
from app.dispatch import timers
from app.models import Event
from tests.harness import Harness, start_harness, start_replicas
from tests.phones import WAIT_S, Phone, offset, phone_for

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def pg_url(backend: str, request: pytest.FixtureRequest) -> str:
    if backend != "postgresql":
        pytest.skip("replicas share PostgreSQL; SQLite serves one process (tested below)")
    return str(request.getfixturevalue("own_database_url"))


@pytest.fixture
async def pair(pg_url: str) -> AsyncIterator[list[Harness]]:
    async with start_replicas(pg_url, 2) as replicas:
        yield replicas


async def until(check: Callable[[], Awaitable[bool] | bool], timeout_s: float = WAIT_S) -> None:
    """Wait (bounded) until `check` holds."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result if isinstance(result, bool) else await result:
            return
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def guard_on(
    home: Harness, where: tuple[float, float], company_id: str | None = None
) -> Phone:
    """A guard registered through the first replica, its phone connected to `home`."""
    guard = await home.make_guard(company_id)
    phone = await phone_for(home, guard)
    await phone.connect()
    await phone.on_duty(*where)
    return phone


def dispatchable(harness: Harness, guard_id: str) -> bool:
    entry = harness.ctx.live.get(guard_id)
    return entry is not None and entry.ready_until > harness.now().timestamp()


async def test_a_guard_on_one_replica_is_offered_an_incident_posted_to_the_other(
    pair: list[Harness], area: tuple[float, float]
) -> None:
    a, b = pair
    await a.make_station(area)
    phone = await guard_on(b, offset(area, north_m=40))
    await until(lambda: dispatchable(a, phone.id))  # B's guard, learnt by A

    incident = await a.make_incident(area)
    offer = await phone.expect("offer")
    assert offer["incident"]["id"] == incident["id"]
    await phone.ack(offer["seq"])
    await phone.send({"type": "offer.accept", "offer_id": offer["offer_id"]})
    assignment = await phone.expect("assignment")
    assert assignment["incident"]["id"] == incident["id"]

    async def assigned_on_a() -> bool:
        body = (await a.get(f"/api/v1/incidents/{incident['id']}")).json()
        return bool(body["status"] == "assigned")

    await until(assigned_on_a)
    # A learns from the event feed that its index's copy of the guard is now busy.
    await until(lambda: not dispatchable(a, phone.id))
    await phone.close()


async def test_a_guard_that_leaves_a_replica_is_dispatched_from_the_other_on_reconnect(
    pair: list[Harness], area: tuple[float, float]
) -> None:
    a, b = pair
    await a.make_station(area)
    phone = await guard_on(a, offset(area, east_m=30))
    await until(lambda: dispatchable(b, phone.id))
    await phone.close()
    await until(lambda: not dispatchable(b, phone.id))  # gone from A: not B's to offer

    moved = Phone(b, phone.guard, phone.token)
    await moved.connect()
    await moved.locate(*offset(area, east_m=35))
    await moved.sync()
    await until(lambda: dispatchable(a, phone.id))
    incident = await a.make_incident(area)
    offer = await moved.expect("offer")
    assert offer["incident"]["id"] == incident["id"]
    await moved.close()


async def test_streams_on_either_replica_carry_every_event_in_id_order_without_gaps(
    pair: list[Harness], area: tuple[float, float]
) -> None:
    a, b = pair
    station = await a.make_station(area)
    token = await b.token("operator")
    query = f"station_id={station['id']}"
    streams = []
    for replica_ in pair:
        ws = await connect(f"{replica_.ws_url}/ws/events?{query}")
        await ws.send(json.dumps({"type": "hello", "token": token}))
        start = json.loads(await asyncio.wait_for(ws.recv(), WAIT_S))
        assert start["type"] == "stream.start"
        streams.append((ws, int(start["after"])))

    # Sixteen writers at once, half on each replica: ids commit out of order.
    await asyncio.gather(*(pair[i % 2].make_incident(area) for i in range(16)))
    oldest = min(after for _, after in streams)
    async with a.ctx.db.transaction(readonly=True) as session:
        expected = list(
            (
                await session.scalars(
                    select(Event.id)
                    .where(Event.station_id == station["id"], Event.id > oldest)
                    .order_by(Event.id)
                )
            ).all()
        )
    for ws, after in streams:
        got: list[int] = []
        async with asyncio.timeout(WAIT_S):
            while not got or got[-1] < expected[-1]:
                frame = json.loads(await ws.recv())
                if frame["type"] != "heartbeat":
                    got.append(int(frame["id"]))
        assert got == [i for i in expected if i > after]  # in order, none missing, no repeat
        await ws.close()


async def test_each_due_timer_fires_once_with_two_schedulers_racing(
    pair: list[Harness],
) -> None:
    fired: list[str] = []

    async def count(_session: AsyncSession, _ctx: AppContext, subject_id: str) -> None:
        fired.append(subject_id)

    for replica_ in pair:
        replica_.ctx.scheduler.handlers["test_count"] = count
    ctx = pair[0].ctx
    subjects = [f"subject-{n}" for n in range(60)]
    async with ctx.db.transaction() as session:
        await timers.schedule_many(
            session, ctx, "test_count", [(s, ctx.clock.now()) for s in subjects]
        )
    await asyncio.gather(*(r.ctx.scheduler.fire_due() for r in pair for _ in range(2)))
    await until(lambda: len(fired) >= len(subjects))
    await asyncio.sleep(0.2)  # and nothing fires twice afterwards
    assert sorted(fired) == sorted(subjects)


async def test_a_replica_that_stops_takes_its_guards_out_of_the_others_dispatch(
    pg_url: str, area: tuple[float, float]
) -> None:
    clock = ManualClock()
    async with start_harness(pg_url, clock) as a:
        async with start_harness(pg_url, clock) as b:
            phone = await guard_on(b, offset(area, north_m=10))
            await until(lambda: dispatchable(a, phone.id))
        # B shut down: its socket closed and its heartbeat row is gone.
        await until(lambda: not dispatchable(a, phone.id))


def test_sqlite_refuses_a_second_server_on_the_same_file(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'one.db'}"
    claim = replica.claim_sqlite_file(url)  # as the first server holds it
    try:
        env = {**os.environ, "DISPATCH_DATABASE_URL": url, "DISPATCH_SECRET_KEY": "x" * 40}
        for extra in ([], ["--workers", "2"]):
            done = subprocess.run(
                [sys.executable, "-m", "app", "serve", "--port", "0", *extra],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert done.returncode != 0
            assert "SQLite serves one process" in done.stderr, done.stderr[-500:]
    finally:
        replica.release_sqlite_file(claim)


def test_a_sqlite_claim_is_reentrant_in_one_process_and_released(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'one.db'}"
    first = replica.claim_sqlite_file(url)
    second = replica.claim_sqlite_file(url)
    replica.release_sqlite_file(second)
    replica.release_sqlite_file(first)
    again = replica.claim_sqlite_file(url)  # free again
    replica.release_sqlite_file(again)
    assert replica.claim_sqlite_file("postgresql+asyncpg://u@h/db") is None


async def test_a_phone_that_reconnects_to_another_replica_replaces_its_old_socket(
    pair: list[Harness], area: tuple[float, float]
) -> None:
    a, b = pair
    old = await guard_on(a, offset(area, north_m=5))
    new = Phone(b, old.guard, old.token)
    await new.connect()
    # One live connection per guard, the newest wins, across replicas too.
    assert await old.closed_with() == 4409
    await new.close()
