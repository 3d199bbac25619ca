"""Escalation policy with the clock controlled, and the police side end to end."""

from __future__ import annotations

import pytest

from tests.harness import Harness, start_harness
from tests.phones import guard_at, offset
from tests.test_dispatch_flow import timeline
from tests.test_errors import assert_error

pytestmark = pytest.mark.usefixtures("backend")


async def escalations(harness: Harness, incident_id: str) -> list[dict]:
    return list((await harness.get(f"/api/v1/incidents/{incident_id}")).json()["escalations"])


async def unit(harness: Harness, station_id: str, call_sign: str, **fields: object) -> dict:
    response = await harness.post(
        "/api/v1/units",
        {"call_sign": call_sign, "station_id": station_id, "kind": "patrol_car", **fields},
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def test_priority_one_escalates_at_once_with_units_nearest_first(
    harness: Harness, area: tuple[float, float], unique: str
) -> None:
    station = await harness.make_station(area)
    far = await unit(
        harness,
        station["id"],
        f"F-{unique}",
        location=dict(zip(("lat", "lon"), offset(area, north_m=3000), strict=True)),
    )
    near = await unit(
        harness,
        station["id"],
        f"N-{unique}",
        location=dict(zip(("lat", "lon"), offset(area, north_m=800), strict=True)),
    )
    unknown = await unit(harness, station["id"], f"U-{unique}")
    await unit(harness, station["id"], f"B-{unique}", status="busy")
    incident = await harness.make_incident(area, category="fire", priority=1)
    [escalation] = await escalations(harness, incident["id"])
    assert escalation["reason"] == "policy" and escalation["status"] == "sent"
    assert escalation["station_id"] == station["id"] and escalation["outside_jurisdiction"] is False
    assert [u["unit_id"] for u in escalation["recommended_units"]] == [
        near["id"],
        far["id"],
        unknown["id"],
    ]
    assert 790 < escalation["recommended_units"][0]["distance_m"] < 810
    assert escalation["recommended_units"][2]["distance_m"] is None
    events = [e for e in await timeline(harness, incident["id"]) if e["type"] == "escalation.sent"]
    assert events[0]["data"]["rule"] == "immediate" and events[0]["station_id"] == station["id"]


async def test_priority_two_escalates_after_two_waves_without_acceptance(
    harness: Harness, area: tuple[float, float]
) -> None:
    await harness.make_station(area)
    outer = await guard_at(harness, offset(area, north_m=1500))  # reached by the third wave (2 km)
    incident = await harness.make_incident(area, category="medical", priority=2)
    offer = await outer.expect("offer")
    assert offer["wave"] == 3
    [escalation] = await escalations(harness, incident["id"])
    assert escalation["reason"] == "policy"
    events = [
        e
        for e in await timeline(harness, incident["id"])
        if e["type"] in ("escalation.sent", "dispatch.wave")
    ]
    assert [e["type"] for e in events] == [
        "dispatch.wave",
        "dispatch.wave",
        "escalation.sent",
        "dispatch.wave",
    ]
    assert events[2]["data"]["rule"] == "no_acceptance_after_2_waves"
    await outer.close()


async def test_priority_two_escalates_when_no_guard_is_on_scene_in_five_minutes(
    harness: Harness, area: tuple[float, float]
) -> None:
    await harness.make_station(area)
    phone = await guard_at(harness, offset(area, north_m=100))
    incident = await harness.make_incident(area, category="medical", priority=2)
    await phone.send(
        {"type": "offer.accept", "offer_id": (await phone.expect("offer"))["offer_id"]}
    )
    await phone.expect("assignment")
    harness.clock.advance(299)
    await phone.sync()
    assert await escalations(harness, incident["id"]) == []
    harness.clock.advance(2)
    for _ in range(100):
        if found := await escalations(harness, incident["id"]):
            break
        await phone.sync()
    assert found[0]["reason"] == "policy"
    events = [e for e in await timeline(harness, incident["id"]) if e["type"] == "escalation.sent"]
    assert events[0]["data"]["rule"] == "no_guard_on_scene_in_time"
    await phone.close()


async def test_guard_on_scene_in_time_means_no_escalation(
    harness: Harness, area: tuple[float, float]
) -> None:
    await harness.make_station(area)
    phone = await guard_at(harness, offset(area, north_m=100))
    incident = await harness.make_incident(area, category="medical", priority=2)
    await phone.send(
        {"type": "offer.accept", "offer_id": (await phone.expect("offer"))["offer_id"]}
    )
    assignment = await phone.expect("assignment")
    await phone.send(
        {
            "type": "assignment.status",
            "assignment_id": assignment["assignment_id"],
            "status": "on_scene",
        }
    )
    await phone.expect("incident.update")
    harness.clock.advance(301)
    await harness.ctx.scheduler.fire_due()
    assert await escalations(harness, incident["id"]) == []
    await phone.close()


async def test_deadline_survives_a_restart(
    own_database_url: str, area: tuple[float, float]
) -> None:
    async with start_harness(own_database_url) as first:
        await first.make_station(area)
        phone = await guard_at(first, offset(area, north_m=100))
        incident = await first.make_incident(area, category="medical", priority=2)
        await phone.send(
            {"type": "offer.accept", "offer_id": (await phone.expect("offer"))["offer_id"]}
        )
        await phone.expect("assignment")
        await phone.close()
        assert await escalations(first, incident["id"]) == []
    async with start_harness(own_database_url) as second:  # the deadline is a row, not a task
        second.clock.advance(301)
        await second.ctx.scheduler.fire_due()
        [escalation] = await escalations(second, incident["id"])
        assert escalation["reason"] == "policy"


async def test_repeated_triggers_add_events_not_escalations(
    harness: Harness, area: tuple[float, float]
) -> None:
    await harness.make_station(area)
    incident = await harness.make_incident(area, priority=3)  # no guards: no_guard escalation
    first = await harness.post(
        f"/api/v1/incidents/{incident['id']}/escalate",
        {"note": "caller very upset"},
        role="operator",
    )
    second = await harness.post(f"/api/v1/incidents/{incident['id']}/escalate", role="operator")
    assert first.status_code == second.status_code == 200
    assert first.json()["id"] == second.json()["id"]
    [only] = await escalations(harness, incident["id"])
    assert only["reason"] == "no_guard"
    retriggered = [
        e["data"]["reason"]
        for e in await timeline(harness, incident["id"])
        if e["type"] == "escalation.retriggered"
    ]
    assert retriggered == ["operator", "operator"]


async def test_operator_escalates_any_open_incident_but_not_a_closed_one(
    harness: Harness, area: tuple[float, float]
) -> None:
    await harness.make_station(area)
    phone = await guard_at(harness, offset(area, north_m=100))
    incident = await harness.make_incident(area, priority=4)
    await phone.expect("offer")
    assert await escalations(harness, incident["id"]) == []
    escalated = await harness.post(f"/api/v1/incidents/{incident['id']}/escalate", role="operator")
    assert escalated.json()["reason"] == "operator"
    await harness.post(f"/api/v1/incidents/{incident['id']}/cancel", role="operator")
    assert_error(
        await harness.post(f"/api/v1/incidents/{incident['id']}/escalate", role="operator"),
        409,
        "invalid_transition",
    )
    assert_error(
        await harness.post(
            f"/api/v1/incidents/{incident['id']}/escalate", {"urgent": True}, role="operator"
        ),
        422,
        "validation_error",
    )
    await phone.close()


async def test_backup_request_escalates_for_priority_three_not_four(
    harness: Harness, area: tuple[float, float]
) -> None:
    await harness.make_station(area)
    for priority, escalates in ((3, True), (4, False)):
        phone = await guard_at(harness, offset(area, north_m=100 * priority))
        await phone.send(
            {
                "type": "report",
                "category": "disturbance",
                "priority": priority,
                "description": "fight",
                "lat": area[0],
                "lon": area[1],
            }
        )
        incident_id = (await phone.expect("report.accepted"))["incident_id"]
        await phone.send({"type": "backup.request", "incident_id": incident_id})
        await phone.expect("backup.requested")
        found = await escalations(harness, incident_id)
        assert ([e["reason"] for e in found] == ["backup_request"]) is escalates
        await phone.close()


async def test_point_outside_every_precinct_escalates_to_the_nearest_and_says_so(
    harness: Harness, area: tuple[float, float]
) -> None:
    station = await harness.make_station((area[0], area[1] + 0.1), half_size_deg=0.02)
    incident = await harness.make_incident(area, category="robbery", priority=1)
    [escalation] = await escalations(harness, incident["id"])
    assert escalation["station_id"] == station["id"] and escalation["outside_jurisdiction"] is True
    assert escalation["distance_to_jurisdiction_m"] > 1000


async def test_police_flow_create_accept_escalate_ack_arrive_handover_close(
    harness: Harness, area: tuple[float, float], unique: str
) -> None:
    station = await harness.make_station(area)
    car = await unit(harness, station["id"], f"P-{unique}")
    key = await harness.api_key(
        ["incidents:write", "incidents:read", "police:act"], station_id=station["id"]
    )
    police = {"Authorization": f"Bearer {key}"}
    phone = await guard_at(harness, offset(area, north_m=150))

    created = await harness.client.post(
        "/api/v1/incidents",
        headers=police,
        json={
            "category": "assault",
            "priority": 1,
            "location": {"lat": area[0], "lon": area[1]},
            "description": "fight outside the bar",
            "external_ref": f"CAD-{unique}",
            "required_guards": 1,
        },
    )
    assert created.status_code == 201 and created.json()["source"] == "police"
    incident_id = created.json()["id"]
    offer = await phone.expect("offer")
    await phone.send({"type": "offer.accept", "offer_id": offer["offer_id"]})
    await phone.expect("assignment")

    ack = await harness.client.post(
        f"/api/v1/incidents/{incident_id}/police/ack", headers=police, json={"unit_id": car["id"]}
    )
    assert (
        ack.status_code == 200
        and ack.json()["status"] == "acknowledged"
        and ack.json()["unit_id"] == car["id"]
    )
    assert "police acknowledged" in (await phone.expect("incident.update"))["note"]
    assert (await harness.get(f"/api/v1/units/{car['id']}")).json()["status"] == "busy"

    instruction = await harness.client.post(
        f"/api/v1/incidents/{incident_id}/instructions",
        headers=police,
        json={"text": "keep people back from the door"},
    )
    assert instruction.status_code == 201 and instruction.json()["guards"] == [phone.id]
    told = await phone.expect("instruction")
    assert (
        told["text"] == "keep people back from the door"
        and told["incident_id"] == incident_id
        and told["seq"] > 0
    )
    await phone.ack(told["seq"])

    assert_error(
        await harness.client.post(
            f"/api/v1/incidents/{incident_id}/police/handover", headers=police
        ),
        409,
        "invalid_transition",
    )
    arrived = await harness.client.post(
        f"/api/v1/incidents/{incident_id}/police/arrived", headers=police
    )
    assert arrived.json()["status"] == "police_on_scene"
    assert "police on scene" in (await phone.expect("incident.update"))["note"]
    handover = await harness.client.post(
        f"/api/v1/incidents/{incident_id}/police/handover",
        headers=police,
        json={"note": "suspect detained"},
    )
    assert handover.json()["status"] == "handed_over"
    stood_down = await phone.expect("incident.update")
    assert (
        "handed over to police" in stood_down["note"] and "suspect detained" in stood_down["note"]
    )
    closed = await harness.client.post(f"/api/v1/incidents/{incident_id}/close", headers=police)
    assert closed.status_code == 200 and closed.json()["status"] == "closed"
    detail = (await harness.get(f"/api/v1/incidents/{incident_id}")).json()
    assert (
        detail["assignments"][0]["status"] == "cleared"
        and "handed over" in detail["assignments"][0]["note"]
    )
    types = [e["type"] for e in await timeline(harness, incident_id)]
    for expected in (
        "escalation.sent",
        "escalation.acknowledged",
        "incident.instruction",
        "escalation.police_on_scene",
        "escalation.handed_over",
        "incident.resolved",
        "incident.closed",
    ):
        assert expected in types
    await phone.close()


async def test_police_api_refuses_wrong_station_state_and_input(
    harness: Harness, area: tuple[float, float]
) -> None:
    station = await harness.make_station(area)
    other = await harness.make_station((area[0] + 0.5, area[1]))
    foreign_key = await harness.api_key(["police:act", "incidents:read"], station_id=other["id"])
    foreign = {"Authorization": f"Bearer {foreign_key}"}
    mine = {
        "Authorization": f"Bearer {await harness.api_key(['police:act'], station_id=station['id'])}"
    }
    phone = await guard_at(harness, offset(area, north_m=100))
    quiet = await harness.make_incident(area, priority=4)  # offered to the guard, not escalated
    await phone.expect("offer")
    assert_error(
        await harness.client.post(f"/api/v1/incidents/{quiet['id']}/police/ack", headers=mine),
        409,
        "not_escalated",
    )
    await phone.close()
    incident = await harness.make_incident(area, category="robbery", priority=1)
    # Another station's incident does not exist for this key.
    assert_error(
        await harness.client.post(
            f"/api/v1/incidents/{incident['id']}/police/ack", headers=foreign
        ),
        404,
        "not_found",
    )
    assert_error(
        await harness.client.get(f"/api/v1/incidents/{incident['id']}", headers=foreign),
        404,
        "not_found",
    )
    assert_error(
        await harness.client.post(
            f"/api/v1/incidents/{incident['id']}/police/ack",
            headers=mine,
            json={"unit_id": "unt_missing"},
        ),
        422,
        "validation_error",
    )
    assert_error(
        await harness.client.post(
            f"/api/v1/incidents/{incident['id']}/police/ack", headers=mine, json={"units": []}
        ),
        422,
        "validation_error",
    )
    assert_error(
        await harness.client.post("/api/v1/incidents/inc_missing/police/ack", headers=mine),
        404,
        "not_found",
    )
    assert_error(
        await harness.client.post(
            f"/api/v1/incidents/{incident['id']}/instructions", headers=mine, json={"text": " "}
        ),
        422,
        "validation_error",
    )
    assert_error(
        await harness.client.post(
            f"/api/v1/incidents/{incident['id']}/instructions", headers=mine, json={"text": "hold"}
        ),
        409,
        "no_guards",
    )
    assert (
        await harness.client.post(f"/api/v1/incidents/{incident['id']}/police/ack", headers=mine)
    ).status_code == 200
    assert_error(
        await harness.client.post(f"/api/v1/incidents/{incident['id']}/police/ack", headers=mine),
        409,
        "invalid_transition",
    )


async def test_handover_stands_open_offers_down_and_frees_the_police_unit(
    harness: Harness, area: tuple[float, float], unique: str
) -> None:
    station = await harness.make_station(area)
    car = await unit(harness, station["id"], f"H-{unique}")
    a = await guard_at(harness, offset(area, north_m=100))
    b = await guard_at(harness, offset(area, north_m=200))
    incident = await harness.make_incident(area, priority=1, category="assault")  # needs two
    offer_a = await a.expect("offer")
    offer_b = await b.expect("offer")
    await a.send({"type": "offer.accept", "offer_id": offer_a["offer_id"]})
    await a.expect("assignment")
    base = f"/api/v1/incidents/{incident['id']}/police"
    assert (await harness.post(f"{base}/ack", {"unit_id": car["id"]})).status_code == 200
    assert (await harness.get(f"/api/v1/units/{car['id']}")).json()["status"] == "busy"
    assert (await harness.post(f"{base}/arrived", {})).status_code == 200
    assert (await harness.post(f"{base}/handover", {"note": "taken over"})).status_code == 200
    withdrawn = await b.expect("offer.withdrawn")
    assert withdrawn["offer_id"] == offer_b["offer_id"] and withdrawn["reason"] == "resolved"
    assert (await harness.get(f"/api/v1/units/{car['id']}")).json()["status"] == "available"
    detail = (await harness.get(f"/api/v1/incidents/{incident['id']}")).json()
    assert detail["status"] == "resolved"
    assert {o["guard_id"]: o["outcome"] for o in detail["offers"]} == {
        a.id: "accepted",
        b.id: "withdrawn",
    }
    await a.close()
    await b.close()


async def test_priority_two_without_guards_escalates_for_policy_then_retriggers_no_guard(
    harness: Harness, area: tuple[float, float]
) -> None:
    await harness.make_station(area)
    incident = await harness.make_incident(area, category="medical", priority=2)
    assert incident["unstaffed"] is True
    [escalation] = await escalations(harness, incident["id"])
    assert escalation["reason"] == "policy"  # the wave rule fires before the waves run out
    events = [
        (e["type"], e["data"]["reason"])
        for e in await timeline(harness, incident["id"])
        if e["type"].startswith("escalation.")
    ]
    assert events == [("escalation.sent", "policy"), ("escalation.retriggered", "no_guard")]


async def test_priority_four_does_not_call_the_police_when_no_guard_is_near(
    harness: Harness, area: tuple[float, float]
) -> None:
    await harness.make_station(area)
    incident = await harness.make_incident(area, priority=4)
    assert incident["unstaffed"] is True
    assert await escalations(harness, incident["id"]) == []
