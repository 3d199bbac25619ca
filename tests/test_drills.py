"""Drills (issue 11 §4): an incident with `exercise: true` runs end to end like any other,
and everything it sends says so — offers and frames to a real phone, the event stream, a
webhook to a real receiver, the incident outputs and CAP; `GET /incidents?exercise=` lets
reports leave drills out."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.client import connect

from tests.harness import Harness
from tests.phones import guard_at, offset
from tests.receiver import Receiver
from tests.test_dispatch_flow import timeline
from tests.test_errors import assert_error
from tests.test_stream import collect

pytestmark = pytest.mark.usefixtures("backend")
CAP = {"cap": "urn:oasis:names:tc:emergency:cap:1.2"}


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    running = Receiver()
    await running.start()
    yield running
    await running.stop()


async def test_a_drill_runs_end_to_end_and_says_so_in_everything_it_sends(
    harness: Harness, area: tuple[float, float], receiver: Receiver
) -> None:
    station = await harness.make_station(area)
    subscription = await harness.post(
        "/api/v1/webhooks",
        {
            "url": receiver.url,
            "event_types": ["incident.created", "incident.assigned", "incident.cancelled"],
            "station_id": station["id"],
        },
    )
    assert subscription.status_code == 201, subscription.text
    phone = await guard_at(harness, offset(area, north_m=120))
    token = await harness.token("operator")
    async with connect(f"{harness.ws_url}/ws/events?station_id={station['id']}") as stream:
        await stream.send(json.dumps({"type": "hello", "token": token}))
        assert json.loads(await stream.recv())["type"] == "stream.start"

        incident = await harness.make_incident(area, category="theft", priority=2, exercise=True)
        assert incident["exercise"] is True

        offer = await phone.expect("offer")  # the phone shows DRILL from this flag
        assert offer["exercise"] is True and offer["incident"]["exercise"] is True
        await phone.send({"type": "offer.accept", "offer_id": offer["offer_id"]})
        assignment = await phone.expect("assignment")
        assert assignment["exercise"] is True and assignment["incident"]["exercise"] is True

        sent = await harness.post(
            f"/api/v1/incidents/{incident['id']}/instructions",
            {"text": "secure the bicycle shed", "tier": "secure_scene"},
            role="operator",
        )
        assert sent.status_code == 201, sent.text
        instruction = await phone.expect("instruction")
        assert instruction["exercise"] is True and instruction["incident_id"] == incident["id"]

        cancelled = await harness.post(
            f"/api/v1/incidents/{incident['id']}/cancel", {"note": "drill over"}, role="operator"
        )
        assert cancelled.status_code == 200 and cancelled.json()["exercise"] is True
        update = await phone.expect("incident.update")
        assert update["exercise"] is True and update["incident"]["exercise"] is True

        streamed = await collect(
            stream, lambda got: any(e["type"] == "incident.cancelled" for e in got)
        )
    mine = [e for e in streamed if e["incident_id"] == incident["id"]]
    assert {"incident.created", "incident.assigned", "incident.cancelled"} <= {
        e["type"] for e in mine
    }
    assert all(e["data"]["exercise"] is True for e in mine)
    # The stored timeline says the same as the live stream.
    assert all(e["data"]["exercise"] is True for e in await timeline(harness, incident["id"]))

    received = await receiver.wait_for(3)
    assert {r.json["type"] for r in received} == {
        "incident.created",
        "incident.assigned",
        "incident.cancelled",
    }
    assert all(r.json["data"]["data"]["exercise"] is True for r in received)

    detail = (await harness.get(f"/api/v1/incidents/{incident['id']}")).json()
    assert detail["exercise"] is True
    root = ET.fromstring((await harness.get(f"/api/v1/incidents/{incident['id']}/cap")).content)
    assert root.findtext("cap:status", namespaces=CAP) == "Exercise"
    assert root.findtext("cap:msgType", namespaces=CAP) == "Cancel"
    assert "drill" in (root.findtext("cap:note", namespaces=CAP) or "")
    await phone.close()


async def test_a_real_incident_says_exercise_false_and_its_events_carry_no_flag(
    harness: Harness, area: tuple[float, float]
) -> None:
    phone = await guard_at(harness, offset(area, east_m=80))
    incident = await harness.make_incident(area)
    assert incident["exercise"] is False
    offer = await phone.expect("offer")
    assert offer["exercise"] is False and offer["incident"]["exercise"] is False
    assert all("exercise" not in e["data"] for e in await timeline(harness, incident["id"]))
    root = ET.fromstring((await harness.get(f"/api/v1/incidents/{incident['id']}/cap")).content)
    assert root.findtext("cap:status", namespaces=CAP) == "Actual"
    await phone.close()


async def test_incidents_filter_on_exercise_so_reports_can_leave_drills_out(
    harness: Harness, area: tuple[float, float]
) -> None:
    station = await harness.make_station(area)
    real = await harness.make_incident(area)
    drill = await harness.make_incident(area, exercise=True)

    async def listed(**params: str) -> set[str]:
        response = await harness.get(
            "/api/v1/incidents", params={"station_id": station["id"], "limit": 500, **params}
        )
        assert response.status_code == 200, response.text
        return {i["id"] for i in response.json()["items"]}

    assert await listed(exercise="true") == {drill["id"]}
    assert await listed(exercise="false") == {real["id"]}
    assert await listed() == {real["id"], drill["id"]}
    assert_error(
        await harness.get("/api/v1/incidents", params={"exercise": "maybe"}),
        422,
        "validation_error",
    )


async def test_exercise_must_be_a_boolean_and_a_refused_body_stores_nothing(
    harness: Harness, area: tuple[float, float]
) -> None:
    station = await harness.make_station(area)
    body = {
        "category": "fire",
        "priority": 2,
        "location": {"lat": area[0], "lon": area[1]},
        "description": "smoke from the bin store",
        "exercise": "yes",
    }
    error = assert_error(
        await harness.post("/api/v1/incidents", body, role="operator"), 422, "validation_error"
    )
    assert "exercise" in json.dumps(error)
    listed = await harness.get("/api/v1/incidents", params={"station_id": station["id"]})
    assert listed.json()["items"] == []


async def test_a_repeat_that_spells_out_exercise_false_is_the_same_request(
    harness: Harness, area: tuple[float, float]
) -> None:
    """Stored request hashes predate the field: leaving it out and `false` must match."""
    first = await harness.make_incident(area, external_ref="drill-compat-1")
    again = await harness.post(
        "/api/v1/incidents",
        {
            "category": "theft",
            "priority": 3,
            "location": {"lat": area[0], "lon": area[1]},
            "description": "bicycle stolen at the north gate",
            "external_ref": "drill-compat-1",
            "exercise": False,
        },
        role="operator",
    )
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first["id"]
    changed = await harness.post(
        "/api/v1/incidents",
        {
            "category": "theft",
            "priority": 3,
            "location": {"lat": area[0], "lon": area[1]},
            "description": "bicycle stolen at the north gate",
            "external_ref": "drill-compat-1",
            "exercise": True,
        },
        role="operator",
    )
    assert_error(changed, 409, "external_ref_reused")
