"""Area broadcasts: every on-duty guard inside the circle gets one acked instruction,
including guards who connect, come on duty or move inside before it expires."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest

from app.clock import isoformat
from tests.harness import Harness, start_harness
from tests.phones import WAIT_S, Phone, guard_at, offset, phone_for

pytestmark = pytest.mark.usefixtures("backend")

TEXT = "Missing child: girl, 6, red coat, last seen at the east gate. Call 110."


def body(
    harness: Harness, center: tuple[float, float], radius_m: float = 1000, **fields: Any
) -> dict[str, Any]:
    return {
        "location": {"lat": center[0], "lon": center[1]},
        "radius_m": radius_m,
        "text": TEXT,
        "expires_at": isoformat(harness.now() + dt.timedelta(hours=2)),
        **fields,
    }


async def broadcast(harness: Harness, center: tuple[float, float], **fields: Any) -> dict[str, Any]:
    response = await harness.post(
        "/api/v1/broadcasts", body(harness, center, **fields), role="operator"
    )
    assert response.status_code == 201, response.text
    assert response.headers["Location"] == f"/api/v1/broadcasts/{response.json()['id']}"
    return dict(response.json())


async def counts_become(harness: Harness, broadcast_id: str, **expected: int) -> dict[str, Any]:
    """Poll (bounded) until the broadcast's counts are as expected."""
    shown: dict[str, Any] = {}
    async with asyncio.timeout(WAIT_S):
        while True:
            shown = (await harness.get(f"/api/v1/broadcasts/{broadcast_id}")).json()
            if all(shown[k] == v for k, v in expected.items()):
                return shown
            await asyncio.sleep(0.02)


async def test_reaches_on_duty_guards_inside_only_and_counts_delivery_and_acks(
    harness: Harness, area: tuple[float, float]
) -> None:
    inside = [
        await guard_at(harness, offset(area, north_m=200)),
        await guard_at(harness, offset(area, east_m=-900)),
    ]
    outside = await guard_at(harness, offset(area, north_m=1500))
    off_duty = await phone_for(harness, await harness.make_guard())
    await off_duty.connect()

    created = await broadcast(harness, area, radius_m=1000)
    assert created == {
        **created,
        "text": TEXT,
        "radius_m": 1000,
        "active": True,
        "recipients": 2,
        "acknowledged": 0,
    }
    assert created["from"] and created["created_by"].startswith("user:")

    frames = [await phone.expect("instruction") for phone in inside]
    for frame in frames:
        assert frame == {
            **frame,
            "broadcast_id": created["id"],
            "incident_id": None,
            "text": TEXT,
            "radius_m": 1000,
            "expires_at": created["expires_at"],
        }
        assert frame["seq"] >= 1 and frame["from"] == created["from"]
    await outside.quiet("instruction", within=0.3)
    await off_duty.quiet("instruction", within=0.1)

    await counts_become(harness, created["id"], recipients=2, delivered=2, acknowledged=0)
    await inside[0].ack(frames[0]["seq"])
    await inside[0].sync()
    await counts_become(harness, created["id"], delivered=2, acknowledged=1)
    await inside[1].ack(frames[1]["seq"])
    await inside[1].sync()
    shown = await counts_become(harness, created["id"], acknowledged=2)
    assert shown["recipients"] == 2

    listed = await harness.get("/api/v1/broadcasts", params={"active": "true", "limit": 500})
    assert created["id"] in [item["id"] for item in listed.json()["items"]]
    for phone in (*inside, outside, off_duty):
        await phone.close()


async def test_guard_coming_on_duty_inside_gets_it_once(
    harness: Harness, area: tuple[float, float]
) -> None:
    created = await broadcast(harness, area, radius_m=500)
    assert created["recipients"] == 0

    late = await phone_for(harness, await harness.make_guard())
    await late.connect()
    await late.quiet("instruction", within=0.2)  # off duty: not yet
    await late.on_duty(*offset(area, north_m=100))
    frame = await late.expect("instruction", broadcast_id=created["id"])
    # More pings inside, and a reconnect after the ack: never a second copy.
    harness.clock.advance(1)
    await late.locate(*offset(area, north_m=120))
    await late.sync()
    await late.ack(frame["seq"])
    await late.sync()
    await late.close()
    await late.connect()
    harness.clock.advance(1)
    await late.locate(*offset(area, north_m=140))
    await late.sync()
    await late.quiet("instruction", within=0.3)
    await counts_become(harness, created["id"], recipients=1, delivered=1, acknowledged=1)
    await late.close()


async def test_guard_moving_into_the_circle_gets_it(
    harness: Harness, area: tuple[float, float]
) -> None:
    walker = await guard_at(harness, offset(area, north_m=800))
    created = await broadcast(harness, area, radius_m=500)
    await walker.quiet("instruction", within=0.2)
    harness.clock.advance(60)
    await walker.locate(*offset(area, north_m=400))  # 400 m in 60 s: a brisk walk
    assert (await walker.expect("instruction"))["broadcast_id"] == created["id"]
    await walker.close()


async def test_unacked_broadcast_is_replayed_on_reconnect(
    harness: Harness, area: tuple[float, float]
) -> None:
    phone = await guard_at(harness, area)
    created = await broadcast(harness, area)
    first = await phone.expect("instruction")
    await phone.close()
    await phone.connect()
    again = await phone.expect("instruction")
    assert again == first  # the same frame, same seq: the phone de-duplicates by seq
    await counts_become(harness, created["id"], recipients=1, delivered=1, acknowledged=0)
    await phone.close()


async def test_busy_guard_gets_it_with_its_next_ping(
    harness: Harness, area: tuple[float, float]
) -> None:
    busy = await guard_at(harness, area)
    incident = await harness.make_incident(offset(area, east_m=50))
    offer = await busy.expect("offer")
    await busy.send({"type": "offer.accept", "offer_id": offer["offer_id"]})
    await busy.expect("assignment")

    created = await broadcast(harness, area)
    assert created["recipients"] == 0  # not dispatchable: the live index's `within` skips it
    harness.clock.advance(5)
    await busy.locate(*offset(area, east_m=20))
    frame = await busy.expect("instruction", broadcast_id=created["id"])
    assert frame["incident_id"] is None and incident["id"]
    await busy.close()


async def test_guard_reconnecting_inside_gets_it_on_connect(
    harness: Harness, area: tuple[float, float]
) -> None:
    phone = await guard_at(harness, offset(area, north_m=100))
    await phone.close()  # dropped: not dispatchable, so the creation does not reach it
    await asyncio.sleep(0.05)
    created = await broadcast(harness, area)
    assert created["recipients"] == 0
    await phone.connect()  # no ping: its last position is fresh and inside
    assert (await phone.expect("instruction"))["broadcast_id"] == created["id"]
    await phone.close()


async def test_expired_broadcast_reaches_nobody_new(
    harness: Harness, area: tuple[float, float]
) -> None:
    created = await broadcast(
        harness, area, expires_at=isoformat(harness.now() + dt.timedelta(seconds=60))
    )
    harness.clock.advance(61)
    late = await guard_at(harness, area)
    await late.quiet("instruction", within=0.3)
    shown = (await harness.get(f"/api/v1/broadcasts/{created['id']}")).json()
    assert shown["active"] is False and shown["recipients"] == 0
    expired = await harness.get("/api/v1/broadcasts", params={"active": "false", "limit": 500})
    assert created["id"] in [item["id"] for item in expired.json()["items"]]
    await late.close()


@pytest.mark.parametrize(
    "fields,field",
    [
        ({"radius_m": 0}, "radius_m"),
        ({"radius_m": 20_001}, "radius_m"),
        ({"radius_m": "500"}, "radius_m"),
        ({"text": "  "}, "text"),
        ({"text": "x" * 1001}, "text"),
        ({"location": {"lat": 91, "lon": 0}}, "location"),
        ({"expires_at": "2020-01-01T00:00:00Z"}, "expires_at"),
        ({"expires_at": "2999-01-01T00:00:00Z"}, "expires_at"),
        ({"expires_at": "2030-01-01T00:00:00"}, "expires_at"),
        ({"expires_at": "soon"}, "expires_at"),
        ({"colour": "red"}, "colour"),
    ],
)
async def test_bad_broadcast_is_refused_and_reaches_nobody(
    harness: Harness, area: tuple[float, float], fields: dict[str, Any], field: str
) -> None:
    phone = await guard_at(harness, area)
    response = await harness.post("/api/v1/broadcasts", body(harness, area, **fields))
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "validation_error"
    assert field in response.json()["error"]["message"]
    await phone.quiet("instruction", within=0.2)
    await phone.close()


async def test_who_may_broadcast_and_see_broadcasts(
    harness: Harness, area: tuple[float, float]
) -> None:
    refused = await harness.post("/api/v1/broadcasts", body(harness, area), role="supervisor")
    assert refused.status_code == 403
    assert (await harness.get("/api/v1/broadcasts/bcast_nope")).status_code == 404

    here = await harness.make_station(area, half_size_deg=0.01)
    there_center = offset(area, north_m=5000)
    there = await harness.make_station(there_center, half_size_deg=0.01)
    key = await harness.api_key(["police:act"], station_id=here["id"])
    auth = {"Authorization": f"Bearer {key}"}
    outside = await harness.client.post(
        "/api/v1/broadcasts", json=body(harness, there_center), headers=auth
    )
    assert outside.status_code == 403
    own = await harness.client.post("/api/v1/broadcasts", json=body(harness, area), headers=auth)
    assert own.status_code == 201 and own.json()["station_id"] == here["id"]
    theirs = await broadcast(harness, there_center)
    assert theirs["station_id"] == there["id"]

    listed = await harness.client.get("/api/v1/broadcasts", params={"limit": 500}, headers=auth)
    ids = [item["id"] for item in listed.json()["items"]]
    assert own.json()["id"] in ids and theirs["id"] not in ids
    hidden = await harness.client.get(f"/api/v1/broadcasts/{theirs['id']}", headers=auth)
    assert hidden.status_code == 404


async def test_active_broadcast_survives_a_restart(
    own_database_url: str, area: tuple[float, float]
) -> None:
    async with start_harness(own_database_url) as first:
        created = await broadcast(first, area)
        guard = await first.make_guard()
        token = (await first.post(f"/api/v1/guards/{guard['id']}/tokens")).json()["token"]
    async with start_harness(own_database_url) as second:
        phone = Phone(second, guard, token)
        await phone.connect()
        await phone.on_duty(*area)
        assert (await phone.expect("instruction"))["broadcast_id"] == created["id"]
        await phone.close()
