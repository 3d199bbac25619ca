"""The dispatch engine end to end: real uvicorn, real websocket clients, both databases."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from app.models import Timer
from tests.harness import Harness
from tests.phones import guard_at, offset

pytestmark = pytest.mark.usefixtures("backend")


async def timeline(harness: Harness, incident_id: str) -> list[dict]:
    items, cursor = [], None
    while True:
        params = {"limit": 500, **({"cursor": cursor} if cursor else {})}
        page = (await harness.get(f"/api/v1/incidents/{incident_id}/events", params=params)).json()
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


async def test_whole_flow_nearest_accepts_others_withdrawn_then_cleared_resolves(
    harness: Harness, area: tuple[float, float]
) -> None:
    near = await guard_at(harness, offset(area, north_m=100))
    mid = await guard_at(harness, offset(area, north_m=300))
    far = await guard_at(harness, offset(area, north_m=600))
    incident = await harness.make_incident(area, category="theft", priority=3)

    offers = {p.id: await p.expect("offer") for p in (near, mid, far)}
    first = offers[near.id]
    assert first["incident"]["id"] == incident["id"]
    assert first["incident"]["description"] == "bicycle stolen at the north gate"
    assert 90 < first["distance_m"] < 110 and first["eta_s"] == round(first["distance_m"] / 1.4)
    assert first["seq"] >= 1 and first["expires_at"].endswith("Z") and first["ranked_by"] == "eta"

    await near.send({"type": "offer.accept", "offer_id": first["offer_id"]})
    assignment = await near.expect("assignment")
    assert assignment["incident"]["id"] == incident["id"] and assignment["status"] == "en_route"
    for other in (mid, far):
        withdrawn = await other.expect("offer.withdrawn")
        assert withdrawn == {
            **withdrawn,
            "offer_id": offers[other.id]["offer_id"],
            "reason": "filled",
        }

    late = await mid.send(
        {"type": "offer.accept", "offer_id": offers[mid.id]["offer_id"]}
    ) or await mid.expect("offer.withdrawn")
    assert late["offer_id"] == offers[mid.id]["offer_id"]

    for status in ("on_scene", "cleared"):
        await near.send(
            {
                "type": "assignment.status",
                "assignment_id": assignment["assignment_id"],
                "status": status,
            }
        )
        update = await near.expect("incident.update")
    assert update["incident"]["status"] == "resolved"

    detail = (await harness.get(f"/api/v1/incidents/{incident['id']}")).json()
    assert detail["status"] == "resolved" and detail["assigned_count"] == 1
    assert {o["guard_id"]: o["outcome"] for o in detail["offers"]} == {
        near.id: "accepted",
        mid.id: "withdrawn",
        far.id: "withdrawn",
    }
    assert [a["status"] for a in detail["assignments"]] == ["cleared"]
    types = [e["type"] for e in await timeline(harness, incident["id"])]
    for expected in (
        "incident.created",
        "incident.dispatching",
        "dispatch.wave",
        "offer.sent",
        "offer.accepted",
        "incident.assigned",
        "offer.withdrawn",
        "assignment.on_scene",
        "incident.on_scene",
        "assignment.cleared",
        "incident.resolved",
    ):
        assert expected in types, expected
    assert (
        types.index("offer.accepted")
        < types.index("incident.assigned")
        < types.index("assignment.on_scene")
    )
    for phone in (near, mid, far):
        await phone.close()


async def test_decline_waits_for_the_wave_then_the_next_wave_goes_wider(
    harness: Harness, area: tuple[float, float]
) -> None:
    close_by = [await guard_at(harness, offset(area, east_m=100 * (i + 1))) for i in range(3)]
    outer = await guard_at(harness, offset(area, east_m=2000))  # outside the first 1 km wave
    incident = await harness.make_incident(area, priority=3)
    offers = [await p.expect("offer") for p in close_by]
    await close_by[0].send(
        {"type": "offer.decline", "offer_id": offers[0]["offer_id"], "reason": "busy"}
    )
    await outer.quiet("offer")  # two offers still pending: no new wave yet
    for phone, offer in zip(close_by[1:], offers[1:], strict=True):
        await phone.send({"type": "offer.decline", "offer_id": offer["offer_id"]})
    second = await outer.expect("offer")
    assert second["wave"] == 2 and second["incident"]["id"] == incident["id"]
    declined = [e for e in await timeline(harness, incident["id"]) if e["type"] == "offer.declined"]
    assert len(declined) == 3 and declined[0]["data"]["reason"] == "busy"
    for phone in (*close_by, outer):
        await phone.close()


async def test_silence_expires_offers_server_side_and_widens(
    harness: Harness, area: tuple[float, float]
) -> None:
    silent = await guard_at(harness, offset(area, north_m=200))
    outer = await guard_at(harness, offset(area, north_m=1800))
    incident = await harness.make_incident(area, priority=3)  # offer timeout 30 s
    offer = await silent.expect("offer")
    harness.clock.advance(29)
    await silent.quiet("offer.withdrawn", within=0.2)
    harness.clock.advance(2)
    expired = await silent.expect("offer.withdrawn")
    assert expired["offer_id"] == offer["offer_id"] and expired["reason"] == "expired"
    await silent.locate(*offset(area, north_m=200))
    wider = await outer.expect("offer")
    assert wider["wave"] == 2
    await silent.quiet("offer")  # who let it expire is not asked again
    outcomes = {
        o["guard_id"]: o["outcome"]
        for o in (await harness.get(f"/api/v1/incidents/{incident['id']}")).json()["offers"]
    }
    assert outcomes == {silent.id: "expired", outer.id: None}
    await silent.close()
    await outer.close()


async def test_no_guard_anywhere_marks_unstaffed(
    harness: Harness, area: tuple[float, float]
) -> None:
    incident = await harness.make_incident(area, priority=2)
    assert incident["unstaffed"] is True
    events = await timeline(harness, incident["id"])
    waves = [e["data"]["radius_m"] for e in events if e["type"] == "dispatch.wave"]
    assert waves == [500, 1000, 2000, 5000]
    unstaffed = [e for e in events if e["type"] == "incident.unstaffed"]
    assert unstaffed and unstaffed[0]["data"] == {"waves": 4, "assigned": 0, "required": 1}
    listed = (
        await harness.get(
            "/api/v1/incidents", params={"near": f"{area[0]},{area[1]}", "radius_m": 10}
        )
    ).json()
    assert listed["items"][0]["unstaffed"] is True


async def test_medical_needs_first_aid_and_skips_the_nearer_guard_without_it(
    harness: Harness, area: tuple[float, float]
) -> None:
    untrained = await guard_at(harness, offset(area, north_m=50), skills=["patrol_vehicle"])
    medic = await guard_at(harness, offset(area, north_m=400), skills=["first_aid"])
    await harness.make_incident(area, category="medical", priority=2)
    assert (await medic.expect("offer"))["incident"]["category"] == "medical"
    await untrained.quiet("offer")
    await untrained.close()
    await medic.close()


async def test_vehicle_guard_outranks_a_nearer_walker(
    harness: Harness, area: tuple[float, float]
) -> None:
    walker = await guard_at(harness, offset(area, north_m=300), skills=["first_aid"])
    driver = await guard_at(
        harness, offset(area, north_m=900), skills=["first_aid", "patrol_vehicle"]
    )
    incident = await harness.make_incident(area, category="theft", priority=3)
    assert (await driver.expect("offer"))["travel_mode"] == "vehicle"
    await walker.expect("offer")
    ranks = {
        o["guard_id"]: o["rank"]
        for o in (await harness.get(f"/api/v1/incidents/{incident['id']}")).json()["offers"]
    }
    assert ranks == {driver.id: 1, walker.id: 2}
    await walker.close()
    await driver.close()


async def test_stale_position_is_skipped(harness: Harness, area: tuple[float, float]) -> None:
    stale = await guard_at(harness, offset(area, north_m=100))
    harness.clock.advance(121)
    fresh = await guard_at(harness, offset(area, north_m=700))
    await harness.make_incident(area, priority=3)
    await fresh.expect("offer")
    await stale.quiet("offer")
    await stale.close()
    await fresh.close()


async def test_priority_one_needs_two_guards_and_the_third_accept_is_withdrawn(
    harness: Harness, area: tuple[float, float]
) -> None:
    phones = [await guard_at(harness, offset(area, north_m=50 * (i + 1))) for i in range(3)]
    incident = await harness.make_incident(area, category="robbery", priority=1)
    offers = [await p.expect("offer") for p in phones]
    for phone, offer in zip(phones[:2], offers[:2], strict=True):
        await phone.send({"type": "offer.accept", "offer_id": offer["offer_id"]})
        await phone.expect("assignment")
    withdrawn = await phones[2].expect("offer.withdrawn")
    assert withdrawn["reason"] == "filled"
    detail = (await harness.get(f"/api/v1/incidents/{incident['id']}")).json()
    assert detail["assigned_count"] == 2 and detail["status"] == "assigned"
    for phone in phones:
        await phone.close()


async def test_operator_assign_overrides_matching_and_withdraws_pending_offers(
    harness: Harness, area: tuple[float, float]
) -> None:
    offered = await guard_at(harness, offset(area, north_m=100))
    chosen = await guard_at(harness, offset(area, north_m=4000))
    incident = await harness.make_incident(area, priority=3)
    await offered.expect("offer")
    response = await harness.post(
        f"/api/v1/incidents/{incident['id']}/assign",
        {"guard_id": chosen.id, "note": "knows the site"},
        role="operator",
    )
    assert response.status_code == 201, response.text
    assert response.json()["source"] == "operator" and response.json()["status"] == "en_route"
    assert (await chosen.expect("assignment"))["incident"]["id"] == incident["id"]
    assert (await offered.expect("offer.withdrawn"))["reason"] == "filled"
    again = await harness.post(
        f"/api/v1/incidents/{incident['id']}/assign", {"guard_id": chosen.id}, role="operator"
    )
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_assigned"
    missing = await harness.post(
        f"/api/v1/incidents/{incident['id']}/assign", {"guard_id": "grd_missing"}, role="operator"
    )
    assert missing.status_code == 422 and missing.json()["error"]["message"].startswith("guard_id:")
    await offered.close()
    await chosen.close()


async def test_operator_withdraws_an_offer_and_the_next_wave_goes_out(
    harness: Harness, area: tuple[float, float]
) -> None:
    first = await guard_at(harness, offset(area, north_m=100))
    outer = await guard_at(harness, offset(area, north_m=2500))
    incident = await harness.make_incident(area, priority=3)
    offer = await first.expect("offer")
    response = await harness.post(
        f"/api/v1/incidents/{incident['id']}/offers/{offer['offer_id']}/withdraw", role="operator"
    )
    assert response.status_code == 200 and response.json()["outcome"] == "withdrawn"
    assert (await first.expect("offer.withdrawn"))["reason"] == "operator"
    assert (await outer.expect("offer"))["wave"] == 2
    twice = await harness.post(
        f"/api/v1/incidents/{incident['id']}/offers/{offer['offer_id']}/withdraw", role="operator"
    )
    assert twice.status_code == 409
    await first.close()
    await outer.close()


async def test_cancel_withdraws_offers_and_stands_assigned_guards_down(
    harness: Harness, area: tuple[float, float]
) -> None:
    a = await guard_at(harness, offset(area, north_m=100))
    b = await guard_at(harness, offset(area, north_m=200))
    incident = await harness.make_incident(area, priority=1, category="assault")
    offer_a = await a.expect("offer")
    await b.expect("offer")
    await a.send({"type": "offer.accept", "offer_id": offer_a["offer_id"]})
    await a.expect("assignment")
    cancelled = await harness.post(
        f"/api/v1/incidents/{incident['id']}/cancel", {"note": "caller withdrew"}, role="operator"
    )
    assert cancelled.json()["status"] == "cancelled"
    assert (await b.expect("offer.withdrawn"))["reason"] == "cancelled"
    update = await a.expect("incident.update")
    assert update["incident"]["status"] == "cancelled" and update["note"] == "caller withdrew"
    # Both are free again for the next incident.
    nearby = (
        await harness.get(
            "/api/v1/guards/nearby", params={"lat": area[0], "lon": area[1], "radius_m": 500}
        )
    ).json()
    assert {i["guard"]["id"] for i in nearby["items"]} == {a.id, b.id}
    await a.close()
    await b.close()


async def test_guard_report_creates_an_incident_assigned_to_the_reporter(
    harness: Harness, area: tuple[float, float]
) -> None:
    reporter = await guard_at(harness, area)
    await reporter.send(
        {
            "type": "report",
            "category": "suspicious",
            "description": "man trying car doors",
            "lat": area[0],
            "lon": area[1],
        }
    )
    accepted = await reporter.expect("report.accepted")
    assignment = await reporter.expect("assignment")
    assert (
        assignment["incident"]["id"] == accepted["incident_id"]
        and assignment["status"] == "on_scene"
    )
    incident = (await harness.get(f"/api/v1/incidents/{accepted['incident_id']}")).json()
    assert incident["source"] == "guard" and incident["status"] == "on_scene"
    assert incident["created_by"] == f"guard:{reporter.id}"
    assert incident["assignments"][0]["guard_id"] == reporter.id
    await reporter.send({"type": "backup.request", "incident_id": accepted["incident_id"]})
    assert (await reporter.expect("backup.requested"))["incident_id"] == accepted["incident_id"]
    await reporter.close()


async def test_nearby_lists_dispatchable_guards_nearest_first(
    harness: Harness, area: tuple[float, float]
) -> None:
    second = await guard_at(harness, offset(area, east_m=300))
    first = await guard_at(harness, offset(area, east_m=100))
    off = await guard_at(harness, offset(area, east_m=50))
    await off.send({"type": "duty", "on": False})
    await off.expect("duty.updated", on=False)
    response = await harness.get(
        "/api/v1/guards/nearby",
        params={"lat": area[0], "lon": area[1], "radius_m": 1000, "limit": 5},
        role="operator",
    )
    items = response.json()["items"]
    assert [i["guard"]["id"] for i in items] == [first.id, second.id]
    assert 95 < items[0]["distance_m"] < 105 and items[0]["eta_s"] == round(
        items[0]["distance_m"] / 1.4
    )
    assert items[0]["position"]["lat"] == pytest.approx(area[0]) and items[0]["seen_at"].endswith(
        "Z"
    )
    bad = await harness.get("/api/v1/guards/nearby", params={"lat": 95, "lon": 0})
    assert bad.status_code == 422 and bad.json()["error"]["message"].startswith("lat:")
    for phone in (first, second, off):
        await phone.close()


async def test_suspended_guard_is_not_dispatched(
    harness: Harness, area: tuple[float, float]
) -> None:
    phone = await guard_at(harness, offset(area, north_m=100))
    await harness.patch(f"/api/v1/guards/{phone.id}", {"status": "suspended"})
    incident = await harness.make_incident(area, priority=3)
    assert incident["unstaffed"] is True
    await phone.quiet("offer")
    await phone.close()


async def test_an_unstaffed_incident_is_staffed_again_once_a_guard_is_assigned(
    harness: Harness, area: tuple[float, float]
) -> None:
    incident = await harness.make_incident(area, priority=3)
    assert incident["unstaffed"] is True
    phone = await guard_at(harness, offset(area, north_m=100))
    response = await harness.post(
        f"/api/v1/incidents/{incident['id']}/assign", {"guard_id": phone.id}, role="operator"
    )
    assert response.status_code == 201, response.text
    after = (await harness.get(f"/api/v1/incidents/{incident['id']}")).json()
    assert after["status"] == "assigned"
    assert after["unstaffed"] is False
    await phone.close()


async def test_a_repeated_accept_answers_the_same_assignment(
    harness: Harness, area: tuple[float, float]
) -> None:
    phone = await guard_at(harness, offset(area, north_m=100))
    await harness.make_incident(area, priority=3)
    offer = await phone.expect("offer")
    await phone.send({"type": "offer.accept", "offer_id": offer["offer_id"]})
    first = await phone.expect("assignment")
    await phone.send({"type": "offer.accept", "offer_id": offer["offer_id"]})  # a retry
    again = await phone.expect("assignment")
    assert again["assignment_id"] == first["assignment_id"]
    assert again["incident"]["id"] == first["incident"]["id"]
    await phone.quiet("offer.withdrawn", within=0.3)
    await phone.close()


async def test_last_guard_clearing_stands_the_other_open_offers_down(
    harness: Harness, area: tuple[float, float]
) -> None:
    a = await guard_at(harness, offset(area, north_m=100))
    b = await guard_at(harness, offset(area, north_m=200))
    incident = await harness.make_incident(area, priority=1, category="assault")  # needs two
    offer_a = await a.expect("offer")
    offer_b = await b.expect("offer")
    await a.send({"type": "offer.accept", "offer_id": offer_a["offer_id"]})
    assignment = await a.expect("assignment")
    for status in ("on_scene", "cleared"):
        await a.send(
            {
                "type": "assignment.status",
                "assignment_id": assignment["assignment_id"],
                "status": status,
            }
        )
        update = await a.expect("incident.update")
    assert update["incident"]["status"] == "resolved"
    withdrawn = await b.expect("offer.withdrawn")
    assert withdrawn["offer_id"] == offer_b["offer_id"] and withdrawn["reason"] == "resolved"
    nearby = (
        await harness.get(
            "/api/v1/guards/nearby", params={"lat": area[0], "lon": area[1], "radius_m": 500}
        )
    ).json()
    assert b.id in {i["guard"]["id"] for i in nearby["items"]}  # free again, not held
    events = await timeline(harness, incident["id"])
    assert [
        (e["data"]["guard_id"], e["data"]["reason"])
        for e in events
        if e["type"] == "offer.withdrawn"
    ] == [(b.id, "resolved")]
    await a.close()
    await b.close()


async def test_incident_assigned_is_recorded_once_per_assignment(
    harness: Harness, area: tuple[float, float]
) -> None:
    phones = [await guard_at(harness, offset(area, north_m=100 * (i + 1))) for i in range(2)]
    incident = await harness.make_incident(area, priority=1, category="assault")  # needs two
    for phone in phones:
        offer = await phone.expect("offer")
        await phone.send({"type": "offer.accept", "offer_id": offer["offer_id"]})
        await phone.expect("assignment")
    detail = (await harness.get(f"/api/v1/incidents/{incident['id']}")).json()
    assert detail["status"] == "assigned"
    assigned = [
        e for e in await timeline(harness, incident["id"]) if e["type"] == "incident.assigned"
    ]
    assert sorted(e["data"]["guard_id"] for e in assigned) == sorted(p.id for p in phones)
    for phone in phones:
        await phone.close()


async def test_an_unstaffed_incident_is_offered_again_when_a_guard_becomes_available(
    harness: Harness, area: tuple[float, float]
) -> None:
    incident = await harness.make_incident(area, priority=3)
    assert incident["unstaffed"] is True
    first = await guard_at(harness, offset(area, north_m=2500))  # within the last wave (3 km)
    offer = await first.expect("offer")
    assert offer["incident"]["id"] == incident["id"] and offer["wave"] == 2
    await first.send({"type": "offer.decline", "offer_id": offer["offer_id"]})
    await first.quiet("offer", within=1.5)  # who refused it is not asked again
    second = await guard_at(harness, offset(area, north_m=300))
    offer = await second.expect("offer")
    await second.send({"type": "offer.accept", "offer_id": offer["offer_id"]})
    await second.expect("assignment")
    detail = (await harness.get(f"/api/v1/incidents/{incident['id']}")).json()
    assert detail["status"] == "assigned" and detail["unstaffed"] is False
    for phone in (first, second):
        await phone.close()


async def test_an_operator_stops_the_re_offering_by_ending_the_incident(
    harness: Harness, area: tuple[float, float]
) -> None:
    incident = await harness.make_incident(area, priority=3)
    assert incident["unstaffed"] is True
    cancelled = await harness.post(
        f"/api/v1/incidents/{incident['id']}/cancel", {}, role="operator"
    )
    assert cancelled.status_code == 200
    phone = await guard_at(harness, offset(area, north_m=100))
    await phone.quiet("offer", within=1.5)
    await phone.close()


async def test_an_assigned_guard_whose_phone_stays_away_is_flagged_to_operators(
    harness: Harness, area: tuple[float, float]
) -> None:
    phone = await guard_at(harness, offset(area, north_m=100))
    incident = await harness.make_incident(area, priority=3)
    offer = await phone.expect("offer")
    await phone.send({"type": "offer.accept", "offer_id": offer["offer_id"]})
    await phone.expect("assignment")
    await phone.close()
    async with asyncio.timeout(5):  # the durable timer is written once the socket is gone
        while not await _timer(harness, "guard_lost", phone.id):
            await asyncio.sleep(0.02)
    harness.clock.advance(30)
    await harness.ctx.scheduler.fire_due()
    assert "assignment.guard_lost" not in [
        e["type"] for e in await timeline(harness, incident["id"])
    ]
    harness.clock.advance(31)
    await harness.ctx.scheduler.fire_due()
    [lost] = [
        e for e in await timeline(harness, incident["id"]) if e["type"] == "assignment.guard_lost"
    ]
    assert lost["data"]["guard_id"] == phone.id


async def _timer(harness: Harness, kind: str, subject_id: str) -> bool:
    async with harness.ctx.db.transaction(readonly=True) as session:
        found = await session.scalar(
            select(Timer.id).where(Timer.kind == kind, Timer.subject_id == subject_id)
        )
    return found is not None


async def test_a_guard_whose_offer_an_operator_withdrew_is_not_asked_again(
    harness: Harness, area: tuple[float, float]
) -> None:
    phone = await guard_at(harness, offset(area, north_m=100))
    incident = await harness.make_incident(area, priority=3)
    offer = await phone.expect("offer")
    response = await harness.post(
        f"/api/v1/incidents/{incident['id']}/offers/{offer['offer_id']}/withdraw", role="operator"
    )
    assert response.status_code == 200, response.text
    withdrawn = await phone.expect("offer.withdrawn", offer_id=offer["offer_id"])
    assert withdrawn["reason"] == "operator"
    # Neither the next wave nor the re-offering of unstaffed incidents asks this guard again.
    await phone.quiet("offer", within=2.5)
    after = (await harness.get(f"/api/v1/incidents/{incident['id']}")).json()
    assert [o["guard_id"] for o in after["offers"]] == [phone.id]
    assert after["unstaffed"] is True
    await phone.close()
