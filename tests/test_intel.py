"""The intelligence channel: guards report, the police triage, the guard hears back."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from app.models import Event
from tests.harness import Harness
from tests.phones import guard_at, offset
from tests.receiver import Receiver, verify_signature

pytestmark = pytest.mark.usefixtures("backend")


def sighting(where: tuple[float, float], **fields: Any) -> dict[str, Any]:
    return {
        "type": "report",
        "kind": "intel",
        "subject": "suspicious_vehicle",
        "description": "white van, no plates, circling the school gate",
        "lat": where[0],
        "lon": where[1],
        **fields,
    }


async def events_of(harness: Harness, type_: str, intel_id: str) -> list[Event]:
    async with harness.ctx.db.transaction(readonly=True) as session:
        rows = (await session.scalars(select(Event).where(Event.type == type_))).all()
    return [e for e in rows if e.data.get("intel_id") == intel_id]


async def report(harness: Harness, phone: Any, where: tuple[float, float]) -> dict[str, Any]:
    await phone.send(sighting(where))
    accepted = await phone.expect("report.accepted", kind="intel")
    return dict(accepted)


async def test_intel_is_stored_for_triage_and_dispatches_nobody(
    harness: Harness, area: tuple[float, float]
) -> None:
    station = await harness.make_station(area)
    reporter = await guard_at(harness, area)
    neighbour = await guard_at(harness, offset(area, north_m=50))

    accepted = await report(harness, reporter, offset(area, east_m=120))
    assert accepted["state"] == "new" and accepted["intel_id"].startswith("intel_")
    assert accepted["station_id"] == station["id"] and "seq" not in accepted
    # Not an incident: nobody is offered anything and the reporter is not put on scene.
    await neighbour.quiet("offer", within=0.5)
    await reporter.quiet("assignment", within=0.1)
    nearby = await harness.get(
        "/api/v1/guards/nearby", params={"lat": area[0], "lon": area[1], "radius_m": 500}
    )
    assert {item["guard"]["id"] for item in nearby.json()["items"]} >= {reporter.id, neighbour.id}

    queue = await harness.get("/api/v1/intel", params={"station_id": station["id"]})
    assert queue.status_code == 200, queue.text
    [item] = queue.json()["items"]
    assert item == {
        **item,
        "id": accepted["intel_id"],
        "guard_id": reporter.id,
        "subject": "suspicious_vehicle",
        "description": "white van, no plates, circling the school gate",
        "station_id": station["id"],
        "station_match": "contains",
        "state": "new",
        "note": None,
        "triaged_at": None,
    }
    assert item["location"]["lat"] == pytest.approx(area[0])
    [event] = await events_of(harness, "intel.reported", accepted["intel_id"])
    assert event.actor == f"guard:{reporter.id}" and event.station_id == station["id"]
    assert event.incident_id is None and event.data["subject"] == "suspicious_vehicle"
    await reporter.close()
    await neighbour.close()


async def test_triage_reaches_the_guard_through_the_outbox_and_is_an_event(
    harness: Harness, area: tuple[float, float]
) -> None:
    station = await harness.make_station(area)
    reporter = await guard_at(harness, area)
    intel_id = (await report(harness, reporter, area))["intel_id"]

    triaged = await harness.post(
        f"/api/v1/intel/{intel_id}/triage",
        {"state": "useful", "note": "patrol car 12 is looking for the van"},
        role="operator",
    )
    assert triaged.status_code == 200, triaged.text
    body = triaged.json()
    assert body["state"] == "useful" and body["note"] == "patrol car 12 is looking for the van"
    assert body["triaged_by"].startswith("user:") and body["triaged_at"].endswith("Z")

    feedback = await reporter.expect("intel.feedback")
    assert feedback == {
        **feedback,
        "intel_id": intel_id,
        "subject": "suspicious_vehicle",
        "state": "useful",
        "note": "patrol car 12 is looking for the van",
    }
    assert feedback["seq"] >= 1 and feedback["from"]
    await reporter.ack(feedback["seq"])
    [event] = await events_of(harness, "intel.triaged", intel_id)
    assert event.station_id == station["id"] and event.data["state"] == "useful"
    assert event.data["guard_id"] == reporter.id

    # useful → acted_on is allowed; after that the verdict is final.
    acted = await harness.post(
        f"/api/v1/intel/{intel_id}/triage",
        {"state": "acted_on", "note": "van stopped, driver questioned"},
        role="operator",
    )
    assert acted.status_code == 200 and acted.json()["state"] == "acted_on"
    assert (await reporter.expect("intel.feedback"))["state"] == "acted_on"
    again = await harness.post(
        f"/api/v1/intel/{intel_id}/triage", {"state": "not_useful", "note": "x"}, role="operator"
    )
    assert again.status_code == 409
    error = again.json()["error"]
    assert error["code"] == "invalid_transition" and "'acted_on'" in error["message"]
    assert error["details"] == {"current_state": "acted_on", "requested": "not_useful"}
    await reporter.quiet("intel.feedback", within=0.3)
    assert len(await events_of(harness, "intel.triaged", intel_id)) == 2
    await reporter.close()


async def test_feedback_waits_for_a_guard_who_is_offline(
    harness: Harness, area: tuple[float, float]
) -> None:
    await harness.make_station(area)
    reporter = await guard_at(harness, area)
    intel_id = (await report(harness, reporter, area))["intel_id"]
    await reporter.close()

    triaged = await harness.post(
        f"/api/v1/intel/{intel_id}/triage",
        {"state": "not_useful", "note": "that van belongs to the school"},
        role="admin",
    )
    assert triaged.status_code == 200, triaged.text

    await reporter.connect()
    feedback = await reporter.expect("intel.feedback")
    assert feedback["intel_id"] == intel_id and feedback["state"] == "not_useful"
    await reporter.close()


async def test_queue_filters_by_station_and_state_and_pages(
    harness: Harness, area: tuple[float, float]
) -> None:
    here = await harness.make_station(area, half_size_deg=0.01)
    there_center = offset(area, north_m=5000)
    there = await harness.make_station(there_center, half_size_deg=0.01)
    phone = await guard_at(harness, area)
    ids = [
        (await report(harness, phone, offset(area, east_m=i * 10)))["intel_id"] for i in range(3)
    ]
    elsewhere = (await report(harness, phone, there_center))["intel_id"]

    first = await harness.get("/api/v1/intel", params={"station_id": here["id"], "limit": 2})
    page = first.json()
    assert [i["id"] for i in page["items"]] == [ids[2], ids[1]]  # newest first
    second = await harness.get(
        "/api/v1/intel",
        params={"station_id": here["id"], "limit": 2, "cursor": page["next_cursor"]},
    )
    assert [i["id"] for i in second.json()["items"]] == [ids[0]]
    assert second.json()["next_cursor"] is None

    await harness.post(
        f"/api/v1/intel/{ids[1]}/triage", {"state": "useful", "note": "thanks"}, role="operator"
    )
    useful = await harness.get(
        "/api/v1/intel", params={"station_id": here["id"], "state": "useful"}
    )
    assert [i["id"] for i in useful.json()["items"]] == [ids[1]]
    open_ = await harness.get(
        "/api/v1/intel", params={"station_id": here["id"], "state": "new,acted_on"}
    )
    assert [i["id"] for i in open_.json()["items"]] == [ids[2], ids[0]]
    mine = await harness.get("/api/v1/intel", params={"guard_id": phone.id})
    assert {i["id"] for i in mine.json()["items"]} == {*ids, elsewhere}

    # A station-scoped police key sees and triages its own station's reports only.
    key = await harness.api_key(["police:act"], station_id=there["id"])
    auth = {"Authorization": f"Bearer {key}"}
    scoped = await harness.client.get("/api/v1/intel", headers=auth)
    assert [i["id"] for i in scoped.json()["items"]] == [elsewhere]
    other = await harness.client.get(
        "/api/v1/intel", params={"station_id": here["id"]}, headers=auth
    )
    assert other.status_code == 403
    hidden = await harness.client.post(
        f"/api/v1/intel/{ids[0]}/triage", json={"state": "useful", "note": "x"}, headers=auth
    )
    assert hidden.status_code == 404
    own = await harness.client.post(
        f"/api/v1/intel/{elsewhere}/triage",
        json={"state": "acted_on", "note": "unit sent"},
        headers=auth,
    )
    assert own.status_code == 200 and own.json()["triaged_by"].startswith("api_key:")
    await phone.close()


@pytest.mark.parametrize(
    "body,field",
    [
        ({"state": "maybe", "note": "x"}, "state"),
        ({"state": "new", "note": "x"}, "state"),
        ({"state": "useful"}, "note"),
        ({"state": "useful", "note": "  "}, "note"),
        ({"state": "useful", "note": "x" * 2001}, "note"),
        ({"state": "useful", "note": "x", "extra": 1}, "extra"),
    ],
)
async def test_bad_triage_is_refused_and_changes_nothing(
    harness: Harness, area: tuple[float, float], body: dict[str, Any], field: str
) -> None:
    phone = await guard_at(harness, area)
    intel_id = (await report(harness, phone, area))["intel_id"]
    response = await harness.post(f"/api/v1/intel/{intel_id}/triage", body, role="operator")
    assert response.status_code == 422, response.text
    assert field in response.text
    assert (await harness.get(f"/api/v1/intel/{intel_id}")).json()["state"] == "new"
    await phone.quiet("intel.feedback", within=0.2)
    await phone.close()


async def test_triage_of_an_unknown_report_is_404_and_roles_are_checked(
    harness: Harness, area: tuple[float, float]
) -> None:
    missing = await harness.post(
        "/api/v1/intel/intel_nope/triage", {"state": "useful", "note": "x"}, role="operator"
    )
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert (await harness.get("/api/v1/intel/intel_nope")).status_code == 404
    # Supervisors may read the queue; only the police side (police:act) triages.
    phone = await guard_at(harness, area)
    intel_id = (await report(harness, phone, area))["intel_id"]
    assert (await harness.get("/api/v1/intel", role="supervisor")).status_code == 200
    refused = await harness.post(
        f"/api/v1/intel/{intel_id}/triage", {"state": "useful", "note": "x"}, role="supervisor"
    )
    assert refused.status_code == 403
    company = await harness.make_company()
    token = await harness.token("company_manager", company_id=company["id"])
    manager = {"Authorization": f"Bearer {token}"}
    assert (await harness.client.get("/api/v1/intel", headers=manager)).status_code == 403
    assert (await harness.get("/api/v1/intel", params={"state": "open"})).status_code == 422
    await phone.close()


@pytest.mark.parametrize(
    "fields,message",
    [
        ({"subject": None}, "report.subject: required when kind is 'intel'"),
        ({"category": "theft"}, "report.category: not used when kind is 'intel'"),
        ({"priority": 2}, "report.priority: not used when kind is 'intel'"),
        ({"subject": "ufo"}, "report.subject"),
        ({"kind": "rumour"}, "report.kind"),
        ({"description": ""}, "report.description"),
        ({"photo": "data:..."}, "report.photo"),
    ],
)
async def test_bad_intel_frame_gets_an_error_and_stores_nothing(
    harness: Harness, area: tuple[float, float], fields: dict[str, Any], message: str
) -> None:
    phone = await guard_at(harness, area)
    frame = {k: v for k, v in sighting(area, **fields).items() if v is not None}
    await phone.send(frame)
    error = await phone.expect("error")
    assert error["code"] == "invalid_frame" and error["ref"] == "report"
    assert error["message"].startswith(message), error
    await phone.sync()  # the connection stays open
    mine = await harness.get("/api/v1/intel", params={"guard_id": phone.id})
    assert mine.json()["items"] == []
    await phone.close()


async def test_incident_report_still_needs_a_category_and_refuses_a_subject(
    harness: Harness, area: tuple[float, float]
) -> None:
    phone = await guard_at(harness, area)
    base = {"type": "report", "description": "x", "lat": area[0], "lon": area[1]}
    await phone.send(base)
    assert (await phone.expect("error"))["message"] == "report.category: Field required"
    await phone.send({**base, "category": "theft", "subject": "hazard"})
    assert (await phone.expect("error"))["message"] == "report.subject: only for kind 'intel'"
    await phone.send({**base, "category": "theft", "kind": "incident"})
    accepted = await phone.expect("report.accepted")
    assert accepted["kind"] == "incident" and accepted["incident_id"].startswith("inc_")
    await phone.close()


async def test_a_station_hears_its_intel_and_the_verdicts_over_webhooks(
    harness: Harness, area: tuple[float, float]
) -> None:
    station = await harness.make_station(area)
    key = {"Authorization": f"Bearer {await harness.api_key(['webhooks:manage'], station['id'])}"}
    receiver = Receiver()
    await receiver.start()
    try:
        subscribed = await harness.client.post(
            "/api/v1/webhooks",
            json={"url": receiver.url, "event_types": ["intel.reported", "intel.triaged"]},
            headers=key,
        )
        assert subscribed.status_code == 201, subscribed.text
        phone = await guard_at(harness, area)
        intel_id = (await report(harness, phone, area))["intel_id"]
        triaged = await harness.post(
            f"/api/v1/intel/{intel_id}/triage",
            {"state": "acted_on", "note": "van stopped at the ring road"},
            role="operator",
        )
        assert triaged.status_code == 200, triaged.text
        received = await receiver.wait_for(2)
        assert all(verify_signature(subscribed.json()["secret"], r) for r in received)
        by_type = {r.json["type"]: r.json["data"] for r in received}
        assert by_type["intel.reported"]["data"]["intel_id"] == intel_id
        assert by_type["intel.reported"]["station_id"] == station["id"]
        assert by_type["intel.triaged"]["data"]["state"] == "acted_on"
        await phone.close()
    finally:
        await receiver.stop()
