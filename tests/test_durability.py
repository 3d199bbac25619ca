"""Races settled by the database, and a crash (SIGKILL) in the middle of a wave."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select, update

from app.models import Event, GuardEngagement, Incident, Offer
from tests.conftest import PG_URL
from tests.harness import SECRET, Harness, fresh_database, start_harness
from tests.phones import Phone, guard_at, offset

pytestmark = pytest.mark.usefixtures("backend")
ROOT = Path(__file__).resolve().parent.parent


async def test_two_incidents_racing_for_one_guard_get_one_offer(
    harness: Harness, area: tuple[float, float]
) -> None:
    phone = await guard_at(harness, offset(area, north_m=100))
    headers = await harness.headers("operator")
    body = {
        "category": "theft",
        "priority": 3,
        "location": {"lat": area[0], "lon": area[1]},
        "description": "race",
    }
    responses = await asyncio.gather(
        *(harness.client.post("/api/v1/incidents", json=body, headers=headers) for _ in range(2))
    )
    assert [r.status_code for r in responses] == [201, 201]
    await phone.expect("offer")
    await phone.quiet("offer", within=0.3)
    async with harness.ctx.db.transaction(readonly=True) as session:
        open_offers = await session.scalar(
            select(func.count())
            .select_from(Offer)
            .where(Offer.guard_id == phone.id, Offer.outcome.is_(None))
        )
        holds = await session.scalar(
            select(func.count())
            .select_from(GuardEngagement)
            .where(GuardEngagement.guard_id == phone.id)
        )
    assert (open_offers, holds) == (1, 1)
    states = sorted(r.json()["unstaffed"] for r in responses)
    assert states == [False, True]
    await phone.close()


async def test_simultaneous_accepts_for_one_seat_have_one_winner(
    harness: Harness, area: tuple[float, float]
) -> None:
    phones = [await guard_at(harness, offset(area, east_m=100 * (i + 1))) for i in range(3)]
    incident = await harness.make_incident(area, priority=3)
    offers = [await p.expect("offer") for p in phones]
    await asyncio.gather(
        *(
            p.send({"type": "offer.accept", "offer_id": o["offer_id"]})
            for p, o in zip(phones, offers, strict=True)
        )
    )
    outcomes = []
    for phone in phones:
        async with asyncio.timeout(5):
            while True:
                frame = await phone.recv()
                if frame["type"] in ("assignment", "offer.withdrawn"):
                    outcomes.append(frame["type"])
                    break
    assert sorted(outcomes) == ["assignment", "offer.withdrawn", "offer.withdrawn"]
    detail = (await harness.get(f"/api/v1/incidents/{incident['id']}")).json()
    assert detail["assigned_count"] == 1 and len(detail["assignments"]) == 1
    for phone in phones:
        await phone.close()


async def test_a_late_accept_that_loses_the_seat_is_withdrawn_and_that_stands(
    harness: Harness, area: tuple[float, float]
) -> None:
    phones = [await guard_at(harness, offset(area, east_m=100 * (i + 1))) for i in range(2)]
    incident = await harness.make_incident(area, priority=3)
    offers = [await p.expect("offer") for p in phones]
    # A racer's commit took the last seat (the in-process lock bypassed): only the
    # conditional UPDATE on the seat count can say no now.
    async with harness.ctx.db.transaction() as session:
        await session.execute(
            update(Incident)
            .where(Incident.id == incident["id"])
            .values(assigned_count=Incident.required_guards)
        )
    late = phones[1]
    await late.send({"type": "offer.accept", "offer_id": offers[1]["offer_id"]})
    withdrawn = await late.expect("offer.withdrawn")
    assert withdrawn["reason"] == "filled" and withdrawn["offer_id"] == offers[1]["offer_id"]
    assert isinstance(withdrawn.get("seq"), int)  # written to the outbox: it stands
    async with harness.ctx.db.transaction(readonly=True) as session:
        offer = await session.get(Offer, offers[1]["offer_id"])
        held = await session.get(GuardEngagement, late.id)
        events = (
            await session.scalars(
                select(Event).where(
                    Event.incident_id == incident["id"], Event.type == "offer.withdrawn"
                )
            )
        ).all()
    assert offer is not None and (offer.outcome, offer.reason) == ("withdrawn", "filled")
    assert held is None
    assert [e.data.get("late_accept") for e in events] == [True]
    harness.clock.advance(60)
    await late.quiet("offer.withdrawn", within=0.3)  # never a second, "expired"
    for phone in phones:
        await phone.close()


async def test_after_a_restart_a_guard_is_dispatchable_only_once_its_phone_reconnects(
    own_database_url: str, area: tuple[float, float]
) -> None:
    async with start_harness(own_database_url) as first:
        phone = await guard_at(first, offset(area, north_m=100))
        await phone.close()
        await first.ctx.positions.flush()
    params = {"lat": area[0], "lon": area[1], "radius_m": 500}
    async with start_harness(own_database_url) as second:
        assert second.ctx.live.get(phone.id) is not None  # restored, but no socket yet
        nearby = (await second.get("/api/v1/guards/nearby", params=params)).json()
        assert nearby["items"] == []
        incident = await second.make_incident(area, priority=4)
        assert incident["unstaffed"] is True  # not offered to a guard with no phone
        back = Phone(second, phone.guard, phone.token)
        await back.connect()  # connected again: dispatchable, and offered what was unstaffed
        offer = await back.expect("offer")
        assert offer["incident"]["id"] == incident["id"]
        await back.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(database_url: str) -> dict[str, str]:
    policy = {"priority": {"3": {"offer_timeout_s": 2}}}
    return {
        **os.environ,
        "DISPATCH_ENV": "test",
        "DISPATCH_DATABASE_URL": database_url,
        "DISPATCH_SECRET_KEY": SECRET,
        "DISPATCH_POLICY": json.dumps(policy),
        "DISPATCH_POSITION_FLUSH_INTERVAL_S": "0.05",
        "DISPATCH_LOG_LEVEL": "WARNING",
    }


async def _start(database_url: str, port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "app", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=_env(database_url),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    async with httpx.AsyncClient() as client:
        for _ in range(600):  # 30 s: a loaded 2-core machine starts Python slowly
            try:
                if (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                    return process
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)
    process.kill()
    raise RuntimeError("server did not become ready")


async def test_sigkill_mid_wave_then_restart_continues_the_wave(
    backend: str, tmp_path: Path
) -> None:
    async with fresh_database(backend, PG_URL, tmp_path) as url:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "app",
                "create-user",
                "--username",
                "root",
                "--password",
                "kill-test-pass",
                "--role",
                "admin",
            ],
            cwd=ROOT,
            env=_env(url),
            check=True,
            capture_output=True,
        )
        port = _free_port()
        server = await _start(url, port)
        try:
            base = f"http://127.0.0.1:{port}"
            async with httpx.AsyncClient(base_url=base, timeout=10) as client:
                token = (
                    await client.post(
                        "/api/v1/auth/token",
                        data={"username": "root", "password": "kill-test-pass"},
                    )
                ).json()["access_token"]
                admin = Harness(base_url=base, app=None, clock=None, client=client)  # type: ignore[arg-type]
                admin._tokens["admin:[]"] = token
                center = (31.2, 121.5)
                near = await _phone(admin, offset(center, north_m=100))
                far = await _phone(admin, offset(center, north_m=2000))
                await asyncio.sleep(0.3)  # let the write-behind store both positions
                incident = (
                    await admin.post(
                        "/api/v1/incidents",
                        {
                            "category": "theft",
                            "priority": 3,
                            "location": {"lat": center[0], "lon": center[1]},
                            "description": "crash test",
                        },
                    )
                ).json()
                offer = await near.expect("offer")
                assert offer["wave"] == 1

                server.send_signal(signal.SIGKILL)  # mid-wave: the offer is open, its timer pending
                server.wait(timeout=10)
                await asyncio.sleep(2.5)  # the offer's deadline passes while the service is down
                server = await _start(url, port)

                await far.connect()
                second = await far.expect("offer", timeout=10)
                assert second["wave"] == 2 and second["incident"]["id"] == incident["id"]
                await near.connect()
                withdrawn = await near.expect("offer.withdrawn", timeout=10)
                assert withdrawn == {
                    **withdrawn,
                    "offer_id": offer["offer_id"],
                    "reason": "expired",
                }
                events = (
                    await admin.get(
                        f"/api/v1/incidents/{incident['id']}/events", params={"limit": 500}
                    )
                ).json()["items"]
                assert [e["data"]["offer_id"] for e in events if e["type"] == "offer.expired"] == [
                    offer["offer_id"]
                ]
                await near.close()
                await far.close()
        finally:
            server.kill()
            server.wait(timeout=10)


async def _phone(admin: Harness, where: tuple[float, float]) -> Phone:
    import datetime as dt

    from app.clock import isoformat

    company = await admin.make_company()
    guard = await admin.make_guard(company["id"])
    token = (await admin.post(f"/api/v1/guards/{guard['id']}/tokens")).json()["token"]
    phone = Phone(admin, guard, token)
    await phone.connect()
    await phone.send({"type": "duty", "on": True})
    await phone.expect("duty.updated")
    await phone.send(
        {
            "type": "location",
            "lat": where[0],
            "lon": where[1],
            "at": isoformat(dt.datetime.now(dt.UTC)),
        }
    )
    await phone.sync()
    return phone


async def test_position_history_is_pruned_in_batches_keeping_recent_rows(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    import datetime as dt

    from sqlalchemy import insert

    from app.models import PositionHistory
    from app.realtime import positions

    guard = await harness.make_guard()
    now = harness.now()
    retention = dt.timedelta(hours=harness.ctx.settings.position_history_retention_h)
    ages = [retention + dt.timedelta(minutes=m) for m in range(1, 8)] + [dt.timedelta(0)] * 2
    async with harness.ctx.db.transaction(serial=False) as session:
        await session.execute(
            insert(PositionHistory),
            [
                {"guard_id": guard["id"], "lat": 39.1, "lon": 117.2, "located_at": now - age}
                for age in ages
            ],
        )
    monkeypatch.setattr(positions, "PRUNE_BATCH", 3)
    assert await harness.ctx.positions.prune_history() >= 7  # other tests may add old rows
    async with harness.ctx.db.transaction(readonly=True) as session:
        left = await session.scalar(
            select(func.count()).where(PositionHistory.guard_id == guard["id"])
        )
    assert left == 2
