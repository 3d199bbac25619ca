"""Guard positions for consoles: the REST snapshot and the coalesced /ws/positions feed.

Most tests run on a server whose feed never ticks by itself (the interval is an hour):
the test calls `tick()` in the server's own loop, so what one tick carries is exact.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from app.clock import isoformat
from app.dispatch.guard_state import guard_state, state_expires_at
from app.geo.bbox import BBox, bbox_from_values, parse_bbox
from app.geo.live_index import GuardEntry, LiveIndex
from app.realtime.close_codes import CloseCode
from app.realtime.positions_feed import FeedClient
from app.realtime.positions_view import (
    GuardPosition,
    Viewer,
    full_item,
    full_json,
    item_body,
    seen_at_iso,
    update_item,
    update_json,
)
from tests.conftest import PG_URL
from tests.harness import Harness, fresh_database, start_harness
from tests.phones import Phone, guard_at, offset, phone_for
from tests.test_errors import assert_error

pytestmark = pytest.mark.usefixtures("backend")
WAIT_S = 5.0


@pytest.fixture(scope="module")
async def manual(backend: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Harness]:
    """A server (and database) of its own whose feed ticks only when a test says so."""
    async with fresh_database(backend, PG_URL, tmp_path_factory.mktemp("manual")) as url:
        async with start_harness(url, positions_feed_interval_s=3600) as running:
            yield running


def box(center: tuple[float, float], half: float = 0.05) -> str:
    lat, lon = center
    return f"{lon - half},{lat - half},{lon + half},{lat + half}"


class Console:
    """A console's /ws/positions socket."""

    def __init__(self, harness: Harness, ws: ClientConnection) -> None:
        self.harness = harness
        self.ws = ws

    @classmethod
    async def open(
        cls, harness: Harness, token: str, bbox: str | None = None, *, in_hello: bool = False
    ) -> tuple[Console, dict[str, Any]]:
        """Connect; the console and its first snapshot."""
        query = f"?bbox={bbox}" if bbox else ""
        headers = {} if in_hello else {"Authorization": f"Bearer {token}"}
        ws = await connect(
            f"{harness.ws_url}/ws/positions{query}", additional_headers=headers, open_timeout=WAIT_S
        )
        console = cls(harness, ws)
        if in_hello:
            await console.send({"type": "hello", "token": token})
        snapshot = await console.expect("positions.snapshot")
        return console, snapshot

    async def send(self, frame: Any) -> None:
        await self.ws.send(frame if isinstance(frame, str) else json.dumps(frame))

    async def recv(self) -> dict[str, Any]:
        """The next frame that is not a heartbeat."""
        async with asyncio.timeout(WAIT_S):
            while True:
                frame = dict(json.loads(await self.ws.recv()))
                if frame["type"] != "heartbeat":
                    return frame

    async def expect(self, frame_type: str) -> dict[str, Any]:
        frame = await self.recv()
        assert frame["type"] == frame_type, frame
        return frame

    async def tick(self) -> dict[str, Any] | None:
        """Run one feed tick; the `positions` frame it sent this console, if any."""
        await self.harness.ctx.positions_feed.tick()
        await self.send({"type": "ping"})  # the pong queues behind whatever the tick sent
        frame = await self.recv()
        if frame["type"] == "pong":
            return None
        assert frame["type"] == "positions", frame
        await self.expect("pong")
        return frame

    async def close(self) -> None:
        await self.ws.close()


def by_id(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["guard_id"]: item for item in items}


async def moved(phone: Phone, lat: float, lon: float, after_s: float = 1.0) -> None:
    """The clock moves on `after_s`, then a ping from here, handled by the server."""
    phone.harness.clock.advance(after_s)
    await phone.locate(lat, lon)
    await phone.sync()


async def until(condition: Any) -> None:
    async with asyncio.timeout(WAIT_S):
        while not condition():
            await asyncio.sleep(0.01)


# The REST snapshot ------------------------------------------------------------------------


async def test_snapshot_shows_an_on_duty_guard_available(
    manual: Harness, area: tuple[float, float]
) -> None:
    phone = await guard_at(manual, area)
    response = await manual.get("/api/v1/guards/positions", params={"bbox": box(area)})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["at"].endswith("Z")
    [item] = body["items"]
    assert item == {
        "guard_id": phone.id,
        "name": "Zhang Wei",
        "badge_no": phone.guard["badge_no"],
        "company_id": phone.guard["company_id"],
        "position": {"lat": area[0], "lon": area[1]},
        "accuracy_m": 5.0,
        "seen_at": isoformat(manual.now()),
        "state": "available",
        "incident_id": None,
    }
    everything = (await manual.get("/api/v1/guards/positions", role="operator")).json()["items"]
    assert phone.id in by_id(everything)
    ids = [i["guard_id"] for i in everything]
    assert ids == sorted(ids)
    await phone.close()


async def test_bbox_filters_and_a_guard_without_a_position_is_left_out(
    manual: Harness, area: tuple[float, float]
) -> None:
    inside = await guard_at(manual, offset(area, north_m=500))
    outside = await guard_at(manual, offset(area, north_m=20_000))
    centre = await guard_at(manual, area)
    unlocated_only = await manual.make_guard()
    never_pinged = await phone_for(manual, unlocated_only)
    await never_pinged.connect()
    await never_pinged.send({"type": "duty", "on": True})
    await never_pinged.expect("duty.updated")
    items = (await manual.get("/api/v1/guards/positions", params={"bbox": box(area)})).json()[
        "items"
    ]
    assert set(by_id(items)) == {inside.id, centre.id}
    wide = box(area, 0.5)
    items = (await manual.get("/api/v1/guards/positions", params={"bbox": wide})).json()["items"]
    assert {inside.id, outside.id} <= set(by_id(items)) and never_pinged.id not in by_id(items)
    for phone in (inside, outside, centre, never_pinged):
        await phone.close()


@pytest.mark.parametrize(
    "bbox",
    [
        "1,2,3",
        "1,2,3,4,5",
        "a,b,c,d",
        "nan,0,1,1",
        "0,0,inf,1",
        "0,10,1,5",
        "0,-91,1,0",
        "-181,0,0,1",
        "0,0,181,1",
        "",
    ],
)
async def test_bad_bbox_is_422_naming_bbox(manual: Harness, bbox: str) -> None:
    response = await manual.get("/api/v1/guards/positions", params={"bbox": bbox})
    error = assert_error(response, 422, "validation_error")
    assert error["message"].startswith("bbox: "), error
    assert error["details"][0]["field"] == "bbox"


async def test_company_manager_sees_only_their_own_company(
    manual: Harness, area: tuple[float, float]
) -> None:
    company = await manual.make_company()
    own = await guard_at(manual, offset(area, east_m=100), company["id"])
    other = await guard_at(manual, offset(area, east_m=200))
    manager = await manual.token("company_manager", company_id=company["id"])
    response = await manual.client.get(
        "/api/v1/guards/positions",
        params={"bbox": box(area)},
        headers={"Authorization": f"Bearer {manager}"},
    )
    assert set(by_id(response.json()["items"])) == {own.id}

    console, snapshot = await Console.open(manual, manager, box(area))
    assert set(by_id(snapshot["items"])) == {own.id}
    await console.tick()
    await moved(own, *offset(area, east_m=101))
    await moved(other, *offset(area, east_m=201))
    update = await console.tick()
    assert update is not None and [i["guard_id"] for i in update["items"]] == [own.id]
    await console.close()
    for phone in (own, other):
        await phone.close()


async def test_unauthenticated_is_refused(manual: Harness) -> None:
    response = await manual.client.get("/api/v1/guards/positions")
    assert_error(response, 401, "unauthorized")
    cases: list[tuple[dict[str, str], str | None]] = [
        ({}, json.dumps({"type": "hello", "token": "nope"})),
        ({}, json.dumps({"type": "bbox", "bbox": None})),
        ({"Authorization": "Bearer nope"}, None),
    ]
    for headers, first in cases:
        assert await close_code(manual, headers, first) == 4401, (headers, first)
    guard = await manual.make_guard()
    device = (await manual.post(f"/api/v1/guards/{guard['id']}/tokens")).json()["token"]
    narrow = await manual.api_key(["incidents:read"])
    for token in (device, narrow):
        assert await close_code(manual, {"Authorization": f"Bearer {token}"}) == 4403
    scoped = await manual.api_key(["positions:read"])
    console, snapshot = await Console.open(manual, scoped)
    assert snapshot["at"].endswith("Z")
    await console.close()


async def close_code(
    harness: Harness, headers: dict[str, str], first: str | None = None
) -> int | None:
    async with connect(f"{harness.ws_url}/ws/positions", additional_headers=headers) as ws:
        if first is not None:
            await ws.send(first)
        try:
            async with asyncio.timeout(WAIT_S):
                while True:
                    await ws.recv()
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None
    return None


# The live feed ----------------------------------------------------------------------------


async def test_feed_snapshot_then_coalesced_updates(
    manual: Harness, area: tuple[float, float]
) -> None:
    phone = await guard_at(manual, area)
    token = await manual.token("operator")
    console, snapshot = await Console.open(manual, token, box(area), in_hello=True)
    [item] = snapshot["items"]
    assert item["guard_id"] == phone.id and item["name"] == "Zhang Wei"
    assert item["state"] == "available" and item["badge_no"] == phone.guard["badge_no"]
    await console.tick()  # whatever was pending when the snapshot was taken

    entry = manual.ctx.live.get(phone.id)
    assert entry is not None
    start = entry.located_at
    for i in range(10):
        at = dt.datetime.fromtimestamp(start + 0.1 * (i + 1), dt.UTC)
        await phone.locate(*offset(area, north_m=i + 1), at=isoformat(at))
    await phone.sync()
    update = await console.tick()
    assert update is not None and update["gone"] == []
    [item] = update["items"]  # ten pings, one update: the last position
    lat, lon = offset(area, north_m=10)
    assert item["position"] == {"lat": lat, "lon": lon}
    assert set(item) == {"guard_id", "position", "accuracy_m", "seen_at", "state", "incident_id"}
    assert await console.tick() is None  # nothing changed: nothing sent
    await console.close()
    await phone.close()


async def test_off_duty_guard_is_never_shown_and_going_off_duty_is_gone(
    manual: Harness, area: tuple[float, float]
) -> None:
    staying = await guard_at(manual, area)
    leaving = await guard_at(manual, offset(area, north_m=50))
    console, snapshot = await Console.open(manual, await manual.token("supervisor"), box(area))
    assert set(by_id(snapshot["items"])) == {staying.id, leaving.id}
    await console.tick()
    await leaving.send({"type": "duty", "on": False})
    await leaving.expect("duty.updated", on=False)
    update = await console.tick()
    assert update is not None and update["gone"] == [leaving.id] and update["items"] == []
    await leaving.locate(*offset(area, north_m=60))  # refused while off duty
    await leaving.expect("error", code="off_duty")
    assert await console.tick() is None
    items = (await manual.get("/api/v1/guards/positions", params={"bbox": box(area)})).json()
    assert set(by_id(items["items"])) == {staying.id}
    await console.send({"type": "bbox", "bbox": json.loads(f"[{box(area)}]")})
    fresh = await console.expect("positions.snapshot")
    assert set(by_id(fresh["items"])) == {staying.id}
    await console.close()
    for phone in (staying, leaving):
        await phone.close()


async def test_moving_the_view_or_leaving_it(manual: Harness, area: tuple[float, float]) -> None:
    here = await guard_at(manual, area)
    there = await guard_at(manual, offset(area, north_m=1500))
    console, snapshot = await Console.open(manual, await manual.token("admin"), box(area, 0.01))
    assert set(by_id(snapshot["items"])) == {here.id}
    await console.tick()

    # The guard from outside comes in: it arrives with its name; ours walks out: gone.
    manual.clock.advance(60)
    await here.locate(*offset(area, north_m=-1500))
    await moved(there, *offset(area, north_m=100), after_s=0)
    update = await console.tick()
    assert update is not None and update["gone"] == [here.id]
    [arrived] = update["items"]
    assert arrived["guard_id"] == there.id and arrived["name"] == "Zhang Wei"
    assert arrived["company_id"] == there.guard["company_id"]

    lat, lon = area
    await console.send({"type": "bbox", "bbox": [lon - 0.05, lat - 0.05, lon + 0.05, lat + 0.05]})
    wider = await console.expect("positions.snapshot")
    assert set(by_id(wider["items"])) == {here.id, there.id}
    await console.close()
    for phone in (here, there):
        await phone.close()


@pytest.mark.parametrize(
    ("frame", "names"),
    [
        ('{"type": "bbox", "bbox": [1, 2, 3]}', "bbox"),
        ('{"type": "bbox", "bbox": [0, 10, 1, 5]}', "bbox"),
        ('{"type": "bbox", "bbox": [0, 0, "1", 1]}', "bbox"),
        ('{"type": "bbox"}', "bbox"),
        ('{"type": "bbox", "bbox": [-200, 0, 1, 1]}', "west"),
        ('{"bbox": [0, 0, 1, 1]}', "type"),
    ],
)
async def test_a_bad_frame_gets_an_error_and_the_socket_stays_open(
    manual: Harness, frame: str, names: str
) -> None:
    console, _ = await Console.open(manual, await manual.token("operator"), box((0.0, 0.0)))
    await console.send(frame)
    error = await console.expect("error")
    assert error["code"] == "invalid_frame" and names in error["message"], error
    await console.send("not json")
    assert (await console.expect("error"))["code"] == "invalid_json"
    await console.send({"type": "ping"})
    assert (await console.expect("pong"))["at"].endswith("Z")
    await console.close()


async def test_bad_bbox_in_the_query_is_refused(manual: Harness) -> None:
    token = await manual.token("operator")
    async with connect(
        f"{manual.ws_url}/ws/positions?bbox=1,2,3",
        additional_headers={"Authorization": f"Bearer {token}"},
    ) as ws:
        error = json.loads(await asyncio.wait_for(ws.recv(), WAIT_S))
        assert error["code"] == "invalid_query" and error["message"].startswith("bbox: ")
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), WAIT_S)


async def test_states_follow_an_incident_through(
    manual: Harness, area: tuple[float, float]
) -> None:
    phone = await guard_at(manual, offset(area, north_m=100))
    console, _ = await Console.open(manual, await manual.token("operator"), box(area))
    await console.tick()

    async def state() -> tuple[str, str | None]:
        update = await console.tick()
        assert update is not None
        [item] = update["items"]
        return item["state"], item["incident_id"]

    incident = await manual.make_incident(area, priority=3)
    offer = await phone.expect("offer")
    assert await state() == ("offered", incident["id"])
    await phone.send({"type": "offer.accept", "offer_id": offer["offer_id"]})
    assignment = await phone.expect("assignment")
    assert await state() == ("en_route", incident["id"])
    for status, shown in (("on_scene", "on_scene"), ("cleared", "available")):
        await phone.send(
            {
                "type": "assignment.status",
                "assignment_id": assignment["assignment_id"],
                "status": status,
            }
        )
        await phone.expect("incident.update")
        assert await state() == (shown, None if shown == "available" else incident["id"])
    await console.close()
    await phone.close()


async def test_disconnected_guard_turns_offline_and_a_silent_one_stale(
    manual: Harness, area: tuple[float, float]
) -> None:
    gone = await guard_at(manual, area)
    silent = await guard_at(manual, offset(area, north_m=100))
    console, _ = await Console.open(manual, await manual.token("operator"), box(area))
    await console.tick()
    seen_at = isoformat(manual.now())
    await gone.close()
    entry = manual.ctx.live.get(gone.id)
    assert entry is not None
    await until(lambda: not entry.connected)
    update = await console.tick()
    assert update is not None
    [item] = update["items"]
    assert item["guard_id"] == gone.id and item["state"] == "offline"
    assert item["seen_at"] == seen_at  # the last position stays on the map
    manual.clock.advance(manual.ctx.settings.position_freshness_s + 1)
    update = await console.tick()
    assert update is not None
    assert [(i["guard_id"], i["state"]) for i in update["items"]] == [(silent.id, "stale")]
    snapshot = (await manual.get("/api/v1/guards/positions", params={"bbox": box(area)})).json()
    assert {i["guard_id"]: i["state"] for i in snapshot["items"]} == {
        gone.id: "offline",
        silent.id: "stale",
    }
    await moved(silent, *offset(area, north_m=101))
    update = await console.tick()
    assert update is not None and update["items"][0]["state"] == "available"
    await console.close()
    await silent.close()


async def test_the_ticker_runs_on_its_own_while_consoles_are_connected(
    own_database_url: str, area: tuple[float, float]
) -> None:
    async with start_harness(
        own_database_url, positions_feed_interval_s=0.05, stream_heartbeat_s=0.2
    ) as quick:
        phone = await guard_at(quick, area)
        token = await quick.token("operator")
        ws = await connect(
            f"{quick.ws_url}/ws/positions?bbox={box(area)}",
            additional_headers={"Authorization": f"Bearer {token}"},
        )
        frames = [json.loads(await asyncio.wait_for(ws.recv(), WAIT_S))]
        assert frames[0]["type"] == "positions.snapshot" and quick.ctx.positions_feed.running
        await moved(phone, *offset(area, north_m=5))
        lat, lon = offset(area, north_m=5)
        async with asyncio.timeout(WAIT_S):
            while not any(
                f["type"] == "positions"
                and f["items"]
                and f["items"][-1]["position"] == {"lat": lat, "lon": lon}
                for f in frames
            ) or not any(f["type"] == "heartbeat" for f in frames):
                frames.append(json.loads(await ws.recv()))
        await ws.close()
        await until(lambda: not quick.ctx.positions_feed.running)  # no console: no ticker
        await phone.close()


async def test_a_console_that_does_not_read_is_closed_with_4008() -> None:
    client = FeedClient(Viewer(None, None))
    for i in range(client.queue.maxsize):
        client.put(f"frame {i}")
    assert client.closing is None
    client.put("one too many")
    assert client.closing is not None and client.closing[0] == CloseCode.SLOW
    assert client.stop.is_set()


# Pure parts -------------------------------------------------------------------------------

NOW = 1_800_000_000.0


def state(**overrides: Any) -> str:
    facts: dict[str, Any] = {
        "connected": True,
        "seen_at": NOW - 10,
        "fresh_after": NOW - 120,
        "activity": None,
        "eligible": True,
    }
    return guard_state(**{**facts, **overrides})


def test_guard_state_from_the_facts() -> None:
    assert state() == "available"
    assert state(eligible=False) == "unavailable"
    for activity in ("offered", "en_route", "on_scene"):
        assert state(activity=activity) == activity
        assert state(activity=activity, eligible=False) == activity
    assert state(seen_at=NOW - 121) == "stale"
    assert state(connected=False) == "offline"
    # Never available unless connected and fresh, whatever else holds.
    assert state(connected=False, seen_at=NOW - 121, activity="on_scene") == "offline"
    assert state(seen_at=NOW - 121, activity="en_route") == "stale"
    assert state(seen_at=NOW - 120) == "available"  # exactly at the edge is still fresh


def test_when_time_alone_changes_a_state() -> None:
    seen = NOW - 10
    assert state_expires_at("available", seen_at=seen, freshness_s=120, eligible_until=NOW + 5) == (
        NOW + 5
    )
    assert state_expires_at(
        "available", seen_at=seen, freshness_s=120, eligible_until=NOW + 1e6
    ) == (seen + 120)
    assert state_expires_at("en_route", seen_at=seen, freshness_s=120, eligible_until=NOW) == (
        seen + 120
    )
    for settled in ("stale", "offline"):
        assert math.isinf(
            state_expires_at(settled, seen_at=seen, freshness_s=120, eligible_until=NOW)  # type: ignore[arg-type]
        )


def test_bbox_parsing_and_the_antimeridian() -> None:
    assert parse_bbox("117.1,39.0,117.3,39.2") == BBox(117.1, 39.0, 117.3, 39.2)
    across = bbox_from_values([170, -10, -170, 10])  # west > east: crosses 180°
    assert across.contains(0, 175) and across.contains(0, -175) and across.contains(5, 180)
    assert not across.contains(0, 0) and not across.contains(11, 175)
    plain = BBox(-1, -1, 1, 1)
    assert plain.contains(0, 0) and plain.contains(1, 1) and not plain.contains(0, 1.01)
    for bad in ([1, 2, 3], [True, 0, 1, 1], [0, 0, math.nan, 1], "0,0,1,1", None):
        with pytest.raises(ValueError):
            bbox_from_values(bad)


def test_viewer_filters_by_company_and_box() -> None:
    position = GuardPosition("g1", "c1", 39.1, 117.2, 5.0, NOW, "available", None)
    assert Viewer(None, None).sees(position)
    assert Viewer(BBox(117, 39, 118, 40), "c1").sees(position)
    assert not Viewer(None, "c2").sees(position)
    assert not Viewer(BBox(117, 39.2, 118, 40), None).sees(position)


def test_index_marks_changes_and_a_dropped_guard_keeps_its_place_but_is_not_dispatched() -> None:
    index = LiveIndex(freshness_s=120)
    entry = index.put(GuardEntry("g1", "c1", frozenset(), 1.4, True, NOW + 3600))
    index.set_duty(entry, True)
    index.connect(entry)
    index.move(entry, 39.1, 117.2, NOW, NOW)
    assert index.changed == {"g1"}
    index.changed.clear()
    assert [n.entry.guard_id for n in index.nearest(39.1, 117.2, k=1, radius_m=10, now=NOW)] == [
        "g1"
    ]
    index.mark_stale(entry)
    assert index.changed == {"g1"} and not entry.connected and entry.seen_at == NOW
    assert index.nearest(39.1, 117.2, k=1, radius_m=10, now=NOW) == []
    index.connect(entry)
    index.engage(entry, "offered", "inc_1")
    assert entry.engaged and entry.incident_id == "inc_1"
    assert index.nearest(39.1, 117.2, k=1, radius_m=10, now=NOW) == []
    index.engage(entry, None, None)
    assert not entry.engaged and index.nearest(39.1, 117.2, k=1, radius_m=10, now=NOW)


def test_hand_written_json_matches_the_dicts() -> None:
    rng = random.Random(3)
    for _ in range(2000):
        seen_at = NOW + rng.uniform(-1e6, 1e6)
        if rng.random() < 0.1:
            seen_at = float(round(seen_at))
        assert seen_at_iso(seen_at) == isoformat(dt.datetime.fromtimestamp(seen_at, dt.UTC))
    names = {"g1": ('Li "Lei" 李', "B-1")}
    for position in (
        GuardPosition("g1", "c1", 39.1, -117.25, 5.0, NOW + 0.5, "en_route", "inc_1"),
        GuardPosition("g2", "c2", -0.0, 180.0, None, NOW, "offline", None),
    ):
        body = item_body(position)
        assert json.loads(update_json(position, body)) == update_item(position)
        assert json.loads(full_json(position, body, names)) == full_item(position, names)
