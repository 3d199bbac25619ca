"""Outbound webhooks to a real local receiver: signatures, retries, restarts, 410, replay."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.harness import Harness, start_harness
from tests.receiver import Receiver, verify_signature
from tests.test_errors import assert_error

pytestmark = pytest.mark.usefixtures("backend")


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    running = Receiver()
    await running.start()
    yield running
    await running.stop()


async def subscribe(
    harness: Harness, url: str, station_id: str, types: list[str] | None = None
) -> dict:
    body = {"url": url, "event_types": types or ["incident.created"], "station_id": station_id}
    response = await harness.post("/api/v1/webhooks", body)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def deliveries(harness: Harness, subscription_id: str) -> list[dict]:
    response = await harness.get(f"/api/v1/webhooks/{subscription_id}/deliveries")
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


async def test_delivery_is_signed_and_verifies_with_the_standard_library(
    harness: Harness, area: tuple[float, float], receiver: Receiver
) -> None:
    station = await harness.make_station(area)
    subscription = await subscribe(harness, receiver.url, station["id"])
    assert subscription["secret"].startswith("whsec_")
    incident = await harness.make_incident(area)
    [received] = await receiver.wait_for(1)
    assert verify_signature(subscription["secret"], received)
    assert received.json["type"] == "incident.created"
    assert received.json["data"]["incident_id"] == incident["id"]
    assert received.json["timestamp"].endswith("Z")
    await harness.ctx.webhooks.drain()
    [delivery] = await deliveries(harness, subscription["id"])
    assert delivery["id"] == received.headers["webhook-id"] and delivery["status"] == "delivered"
    assert (
        delivery["attempt_log"][0]["status_code"] == 200
        and delivery["attempt_log"][0]["latency_ms"] >= 0
    )
    listed = (await harness.get("/api/v1/webhooks", params={"limit": 500})).json()["items"]
    assert subscription["id"] in {s["id"] for s in listed} and "secret" not in listed[0]


async def test_receiver_down_then_back_gets_the_same_webhook_id(
    harness: Harness, area: tuple[float, float]
) -> None:
    receiver = Receiver()
    await receiver.start()
    url = receiver.url
    await receiver.stop()  # down: connection refused
    station = await harness.make_station(area)
    subscription = await subscribe(harness, url, station["id"])
    await harness.make_incident(area)
    async with asyncio.timeout(10):
        while not (await deliveries(harness, subscription["id"]))[0]["attempt_log"]:
            await asyncio.sleep(0.02)
    [failed] = await deliveries(harness, subscription["id"])
    assert failed["status"] == "pending" and failed["attempts"] == 1
    assert (
        failed["attempt_log"][0]["status_code"] is None
        and "Connect" in failed["attempt_log"][0]["error"]
    )
    await receiver.start()  # back, same port
    receiver.statuses.extend([503])
    harness.clock.advance(6)  # second attempt after ~5 s: the receiver answers 503
    await receiver.wait_for(1)
    await harness.ctx.webhooks.drain()  # the 503 is recorded and the retry scheduled
    harness.clock.advance(400)  # third attempt after ~5 min: 200
    [first, second] = await receiver.wait_for(2)
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == failed["id"]
    await harness.ctx.webhooks.drain()
    [done] = await deliveries(harness, subscription["id"])
    assert done["status"] == "delivered" and [a["status_code"] for a in done["attempt_log"]] == [
        None,
        503,
        200,
    ]
    assert done["attempt_log"][1]["response_excerpt"] == "status 503"
    await receiver.stop()


async def test_service_restarted_mid_retry_still_delivers(
    own_database_url: str, area: tuple[float, float], receiver: Receiver
) -> None:
    receiver.statuses.extend([500])
    async with start_harness(own_database_url) as first:
        station = await first.make_station(area)
        subscription = await subscribe(first, receiver.url, station["id"])
        await first.make_incident(area)
        await receiver.wait_for(1)
        await first.ctx.webhooks.drain()
    async with start_harness(own_database_url) as second:
        second.clock.advance(10)
        [failed, delivered] = await receiver.wait_for(2)
        assert failed.headers["webhook-id"] == delivered.headers["webhook-id"]
        await second.ctx.webhooks.drain()
        [row] = await deliveries(second, subscription["id"])
        assert row["status"] == "delivered" and row["attempts"] == 2


async def test_410_gone_disables_the_subscription(
    harness: Harness, area: tuple[float, float], receiver: Receiver
) -> None:
    receiver.statuses.extend([410])
    station = await harness.make_station(area)
    subscription = await subscribe(harness, receiver.url, station["id"])
    await harness.make_incident(area)
    await receiver.wait_for(1)
    await harness.ctx.webhooks.drain()
    current = (await harness.get(f"/api/v1/webhooks/{subscription['id']}")).json()
    assert current["active"] is False and "410" in current["disabled_reason"]
    await harness.make_incident(area)
    await asyncio.sleep(0.2)
    assert len(receiver.received) == 1
    assert len(await deliveries(harness, subscription["id"])) == 1
    [row] = await deliveries(harness, subscription["id"])
    replay = await harness.post(f"/api/v1/webhooks/deliveries/{row['id']}/replay")
    assert_error(replay, 409, "webhook_disabled")


async def test_replay_resends_with_the_same_id(
    harness: Harness, area: tuple[float, float], receiver: Receiver
) -> None:
    station = await harness.make_station(area)
    await subscribe(harness, receiver.url, station["id"])
    await harness.make_incident(area)
    [original] = await receiver.wait_for(1)
    await harness.ctx.webhooks.drain()
    replay = await harness.post(
        f"/api/v1/webhooks/deliveries/{original.headers['webhook-id']}/replay"
    )
    assert replay.status_code == 200 and replay.json()["status"] == "pending"
    [_, again] = await receiver.wait_for(2)
    assert (
        again.headers["webhook-id"] == original.headers["webhook-id"]
        and again.body == original.body
    )


async def test_replay_of_a_delivery_being_sent_is_409_and_changes_nothing(
    harness: Harness, area: tuple[float, float], receiver: Receiver
) -> None:
    receiver.delay_s = 1.0
    station = await harness.make_station(area)
    subscription = await subscribe(harness, receiver.url, station["id"])
    await harness.make_incident(area)
    async with asyncio.timeout(5):
        while receiver.in_flight == 0:
            await asyncio.sleep(0.01)
    [delivery] = await deliveries(harness, subscription["id"])
    replay = await harness.post(f"/api/v1/webhooks/deliveries/{delivery['id']}/replay")
    assert_error(replay, 409, "delivery_in_flight")
    [received] = await receiver.wait_for(1)
    await harness.ctx.webhooks.drain()
    [done] = await deliveries(harness, subscription["id"])
    assert done["status"] == "delivered" and done["attempts"] == 1
    await asyncio.sleep(0.2)
    assert len(receiver.received) == 1 and received.headers["webhook-id"] == delivery["id"]


async def test_slow_receiver_does_not_hold_up_dispatch(
    harness: Harness, area: tuple[float, float], receiver: Receiver
) -> None:
    receiver.delay_s = 3.0
    station = await harness.make_station(area)
    await subscribe(harness, receiver.url, station["id"])
    first = await harness.make_incident(area)
    async with asyncio.timeout(5):
        while receiver.in_flight == 0:
            await asyncio.sleep(0.01)
    second = await harness.make_incident(area)  # answered while the receiver still holds the first
    assert receiver.in_flight >= 1 and second["id"] != first["id"]
    await receiver.wait_for(2, timeout=15)


async def test_a_slow_receivers_backlog_does_not_delay_other_subscribers(
    harness: Harness, area: tuple[float, float], receiver: Receiver
) -> None:
    slow = Receiver(delay_s=2.0)
    await slow.start()
    try:
        station = await harness.make_station(area)
        await subscribe(harness, slow.url, station["id"])
        await subscribe(harness, receiver.url, station["id"])
        for _ in range(12):
            await harness.make_incident(area)
        await receiver.wait_for(12, timeout=10)  # the prompt receiver gets everything…
        assert len(slow.received) < 12  # …while the slow one is still working through its share
        cap = harness.ctx.settings.webhook_concurrency_per_endpoint
        assert slow.peak_in_flight <= cap
        await slow.wait_for(12, timeout=30)
        assert slow.peak_in_flight <= cap
    finally:
        await slow.stop()


async def test_station_filter_and_event_types(
    harness: Harness, area: tuple[float, float], receiver: Receiver
) -> None:
    mine = await harness.make_station(area)
    other_area = (area[0] + 0.5, area[1])
    await harness.make_station(other_area)
    subscription = await subscribe(harness, receiver.url, mine["id"], ["incident.cancelled"])
    incident = await harness.make_incident(area)
    await harness.make_incident(other_area)
    await harness.post(f"/api/v1/incidents/{incident['id']}/cancel", role="operator")
    [received] = await receiver.wait_for(1)
    assert (
        received.json["type"] == "incident.cancelled"
        and received.json["data"]["incident_id"] == incident["id"]
    )
    await asyncio.sleep(0.2)
    assert len(receiver.received) == 1
    assert (
        await harness.client.delete(
            f"/api/v1/webhooks/{subscription['id']}", headers=await harness.headers()
        )
    ).status_code == 204
    assert_error(await harness.get(f"/api/v1/webhooks/{subscription['id']}"), 404, "not_found")


@pytest.mark.parametrize(
    "body,field",
    [
        ({"url": "ftp://example.com/x", "event_types": ["incident.created"]}, "url"),
        ({"url": "http://user:pw@example.com/x", "event_types": ["incident.created"]}, "url"),
        ({"url": "https://example.com/x", "event_types": ["incident.exploded"]}, "event_types"),
        ({"url": "https://example.com/x", "event_types": []}, "event_types"),
        (
            {
                "url": "https://example.com/x",
                "event_types": ["incident.created"],
                "station_id": "stn_missing",
            },
            "station_id",
        ),
        (
            {"url": "https://example.com/x", "event_types": ["incident.created"], "secret": "mine"},
            "secret",
        ),
    ],
)
async def test_bad_subscription_is_422(harness: Harness, body: dict, field: str) -> None:
    error = assert_error(await harness.post("/api/v1/webhooks", body), 422, "validation_error")
    assert error["message"].startswith(f"{field}:"), error


async def test_integration_keys_see_only_their_own_subscriptions(
    harness: Harness, area: tuple[float, float], receiver: Receiver
) -> None:
    station = await harness.make_station(area)
    other = await harness.make_station((area[0] + 0.5, area[1]))
    key = await harness.api_key(["webhooks:manage"], station_id=station["id"])
    headers = {"Authorization": f"Bearer {key}"}
    created = await harness.client.post(
        "/api/v1/webhooks",
        json={"url": receiver.url, "event_types": ["incident.created"]},
        headers=headers,
    )
    assert created.status_code == 201 and created.json()["station_id"] == station["id"]
    foreign = await subscribe(harness, receiver.url, other["id"])
    listed = (await harness.client.get("/api/v1/webhooks", headers=headers)).json()["items"]
    assert [s["id"] for s in listed] == [created.json()["id"]]
    assert_error(
        await harness.client.get(f"/api/v1/webhooks/{foreign['id']}", headers=headers),
        404,
        "not_found",
    )
    wrong = await harness.client.post(
        "/api/v1/webhooks",
        json={"url": receiver.url, "event_types": ["incident.created"], "station_id": other["id"]},
        headers=headers,
    )
    assert_error(wrong, 403, "forbidden")
    assert_error(
        await harness.post("/api/v1/webhooks/deliveries/msg_missing/replay"), 404, "not_found"
    )
