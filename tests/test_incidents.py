"""Incident intake, idempotency, validation, lifecycle and queries."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest
from sqlalchemy import func, select

from app.models import Event, Incident
from tests.harness import Harness
from tests.test_errors import assert_error

pytestmark = pytest.mark.usefixtures("backend")


def body(center: tuple[float, float], **overrides: Any) -> dict[str, Any]:
    return {
        "category": "medical",
        "priority": 2,
        "location": {"lat": center[0], "lon": center[1]},
        "address": "East gate, Binjiang Road",
        "description": "elderly man collapsed at the east gate",
        **overrides,
    }


async def count_incidents(harness: Harness, **where: Any) -> int:
    async with harness.ctx.db.transaction(readonly=True) as session:
        stmt = select(func.count()).select_from(Incident)
        for column, value in where.items():
            stmt = stmt.where(getattr(Incident, column) == value)
        return int(await session.scalar(stmt) or 0)


async def test_create_incident_is_durable_and_finds_its_station(
    harness: Harness, area: tuple[float, float]
) -> None:
    station = await harness.make_station(area)
    response = await harness.post("/api/v1/incidents", body(area), role="operator")
    assert response.status_code == 201, response.text
    incident = response.json()
    assert incident["id"].startswith("inc_")
    assert incident["status"] == "dispatching"  # the first wave went out in the same transaction
    assert incident["station_id"] == station["id"]
    assert incident["station_match"] == "contains"
    assert incident["source"] == "console"
    assert incident["required_guards"] == 1
    assert incident["location"] == {"lat": area[0], "lon": area[1]}
    assert incident["created_at"].endswith("Z")
    assert response.headers["Location"] == f"/api/v1/incidents/{incident['id']}"

    # Committed before the 201: another connection sees the row and its created event.
    async with harness.ctx.db.transaction(readonly=True) as session:
        stored = await session.get(Incident, incident["id"])
        events = (
            await session.scalars(
                select(Event).where(Event.incident_id == incident["id"]).order_by(Event.id)
            )
        ).all()
    assert stored is not None and stored.description == "elderly man collapsed at the east gate"
    assert [e.type for e in events][:2] == ["incident.created", "incident.dispatching"]
    assert events[0].data["category"] == "medical"


async def test_priority_one_defaults_to_two_guards(
    harness: Harness, area: tuple[float, float]
) -> None:
    incident = await harness.make_incident(area, category="robbery", priority=1)
    assert incident["required_guards"] == 2


async def test_point_outside_every_precinct_goes_to_the_nearest_station(
    harness: Harness, area: tuple[float, float]
) -> None:
    near = await harness.make_station((area[0], area[1] + 0.2), half_size_deg=0.05)
    await harness.make_station((area[0], area[1] + 0.6), half_size_deg=0.05)
    incident = await harness.make_incident(area)
    assert incident["station_id"] == near["id"]
    assert incident["station_match"] == "nearest"


async def test_overlapping_precincts_resolve_to_the_smallest(
    harness: Harness, area: tuple[float, float]
) -> None:
    await harness.make_station(area, half_size_deg=0.2)
    small = await harness.make_station(area, half_size_deg=0.02)
    incident = await harness.make_incident(area)
    assert incident["station_id"] == small["id"]


async def test_same_external_ref_returns_the_same_incident(
    harness: Harness, area: tuple[float, float], unique: str
) -> None:
    key = await harness.api_key(["incidents:write", "incidents:read"])
    headers = {"Authorization": f"Bearer {key}"}
    payload = body(area, external_ref=f"CAD-{unique}")
    first = await harness.client.post("/api/v1/incidents", json=payload, headers=headers)
    second = await harness.client.post("/api/v1/incidents", json=payload, headers=headers)
    assert first.status_code == 201 and second.status_code == 201
    assert first.json()["source"] == "police"
    assert second.json()["id"] == first.json()["id"]
    assert second.headers["Idempotent-Replayed"] == "true"
    assert await count_incidents(harness, external_ref=f"CAD-{unique}") == 1


async def test_two_callers_with_the_same_external_ref_get_two_incidents(
    harness: Harness, area: tuple[float, float], unique: str
) -> None:
    first_key = await harness.api_key(["incidents:write", "incidents:read"])
    second_key = await harness.api_key(["incidents:write", "incidents:read"])
    ref = f"CAD-{unique}"
    first = await harness.client.post(
        "/api/v1/incidents",
        json=body(area, external_ref=ref),
        headers={"Authorization": f"Bearer {first_key}"},
    )
    # A squatter posting the reference first must not swallow the real caller's incident.
    second = await harness.client.post(
        "/api/v1/incidents",
        json=body(area, external_ref=ref, description="burst water main on Binjiang Road"),
        headers={"Authorization": f"Bearer {second_key}"},
    )
    assert first.status_code == second.status_code == 201, (first.text, second.text)
    assert second.json()["id"] != first.json()["id"]
    assert "Idempotent-Replayed" not in second.headers
    assert second.json()["description"] == "burst water main on Binjiang Road"
    assert await count_incidents(harness, external_ref=ref) == 2


async def test_station_key_cannot_read_another_stations_incident_by_its_external_ref(
    harness: Harness, area: tuple[float, float], unique: str
) -> None:
    mine = await harness.make_station(area)
    theirs = await harness.make_station((area[0] + 0.5, area[1]))
    their_key = await harness.api_key(["incidents:write", "incidents:read"], theirs["id"])
    my_key = await harness.api_key(["incidents:write", "incidents:read"], mine["id"])
    ref = f"CAD-{unique}"
    secret = "witness name and phone: Chen Jing +86 139 0000 0000"
    posted = await harness.client.post(
        "/api/v1/incidents",
        json=body((area[0] + 0.5, area[1]), external_ref=ref, description=secret),
        headers={"Authorization": f"Bearer {their_key}"},
    )
    assert posted.status_code == 201, posted.text
    probe = await harness.client.post(
        "/api/v1/incidents",
        json=body(area, external_ref=ref),
        headers={"Authorization": f"Bearer {my_key}"},
    )
    assert probe.status_code == 201, probe.text
    assert probe.json()["id"] != posted.json()["id"]
    assert probe.json()["station_id"] == mine["id"]
    assert secret not in probe.text and "Idempotent-Replayed" not in probe.headers


async def test_same_external_ref_with_a_changed_body_is_409_and_changes_nothing(
    harness: Harness, area: tuple[float, float], unique: str
) -> None:
    key = await harness.api_key(["incidents:write", "incidents:read"])
    headers = {"Authorization": f"Bearer {key}"}
    ref = f"CAD-{unique}"
    first = await harness.client.post(
        "/api/v1/incidents", json=body(area, external_ref=ref), headers=headers
    )
    assert first.status_code == 201, first.text
    changed = await harness.client.post(
        "/api/v1/incidents",
        json=body(area, external_ref=ref, priority=1, description="now armed"),
        headers=headers,
    )
    error = assert_error(changed, 409, "external_ref_reused")
    assert error["details"] == {"incident_id": first.json()["id"], "external_ref": ref}
    stored = (await harness.get(f"/api/v1/incidents/{first.json()['id']}")).json()
    assert stored["priority"] == 2 and stored["description"] == body(area)["description"]
    assert await count_incidents(harness, external_ref=ref) == 1
    replay = await harness.client.post(
        "/api/v1/incidents", json=body(area, external_ref=ref), headers=headers
    )
    assert replay.status_code == 201 and replay.json()["id"] == first.json()["id"]
    assert replay.headers["Idempotent-Replayed"] == "true"


async def test_idempotency_key_replays_and_refuses_a_different_body(
    harness: Harness, area: tuple[float, float], unique: str
) -> None:
    headers = {**await harness.headers("operator"), "Idempotency-Key": f"idem-{unique}"}
    first = await harness.client.post("/api/v1/incidents", json=body(area), headers=headers)
    again = await harness.client.post("/api/v1/incidents", json=body(area), headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    changed = await harness.client.post(
        "/api/v1/incidents", json=body(area, description="something else"), headers=headers
    )
    assert_error(changed, 409, "idempotency_key_reused")
    assert await count_incidents(harness, idempotency_key=f"idem-{unique}") == 1


async def test_concurrent_duplicates_store_one_incident(
    harness: Harness, area: tuple[float, float], unique: str
) -> None:
    key = await harness.api_key(["incidents:write"])
    headers = {"Authorization": f"Bearer {key}"}
    payload = body(area, external_ref=f"RACE-{unique}")
    responses = await asyncio.gather(
        *(
            harness.client.post("/api/v1/incidents", json=payload, headers=headers)
            for _ in range(12)
        )
    )
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 1
    assert await count_incidents(harness, external_ref=f"RACE-{unique}") == 1
    async with harness.ctx.db.transaction(readonly=True) as session:
        created = await session.scalar(
            select(func.count())
            .select_from(Event)
            .where(Event.incident_id == responses[0].json()["id"], Event.type == "incident.created")
        )
    assert created == 1


BAD_BODIES: list[tuple[str, dict[str, Any], str]] = [
    ("lat too large", {"location": {"lat": 91, "lon": 117.2}}, "location.lat"),
    ("lon too small", {"location": {"lat": 39.1, "lon": -181}}, "location.lon"),
    ("lat as string", {"location": {"lat": "39.1", "lon": 117.2}}, "location.lat"),
    ("lat missing", {"location": {"lon": 117.2}}, "location.lat"),
    ("location null", {"location": None}, "location"),
    ("unknown category", {"category": "alien_invasion"}, "category"),
    ("priority zero", {"priority": 0}, "priority"),
    ("priority five", {"priority": 5}, "priority"),
    ("priority as string", {"priority": "2"}, "priority"),
    # 2.0 is an integer to JSON Schema (and so to the OpenAPI document): taken as 2.
    ("priority as fraction", {"priority": 2.5}, "priority"),
    ("priority as bool", {"priority": True}, "priority"),
    ("empty description", {"description": "   "}, "description"),
    ("oversize description", {"description": "x" * 4001}, "description"),
    ("oversize address", {"address": "x" * 501}, "address"),
    ("unknown source", {"source": "twitter"}, "source"),
    ("external_ref with spaces", {"external_ref": "CAD 1"}, "external_ref"),
    ("required_guards zero", {"required_guards": 0}, "required_guards"),
    ("unknown field", {"severity": "high"}, "severity"),
    ("typo in location", {"location": {"lat": 39.1, "lng": 117.2}}, "location.lng"),
]


@pytest.mark.parametrize("case,overrides,field", BAD_BODIES, ids=[c[0] for c in BAD_BODIES])
async def test_bad_incident_is_rejected_and_writes_nothing(
    harness: Harness,
    area: tuple[float, float],
    case: str,
    overrides: dict[str, Any],
    field: str,
    unique: str,
) -> None:
    payload = body(area, external_ref=f"BAD-{unique}")
    payload.update(overrides)
    response = await harness.post("/api/v1/incidents", payload, role="operator")
    error = assert_error(response, 422, "validation_error")
    assert error["message"].startswith(f"{field}:"), error
    assert any(d["field"] == field for d in error["details"])
    assert await count_incidents(harness, lat=area[0], lon=area[1]) == 0


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
async def test_non_finite_coordinates_are_rejected(
    harness: Harness, area: tuple[float, float], value: str, unique: str
) -> None:
    location = f'{{"lat":{value},"lon":{area[1]}}}'
    text = f'{{"category":"theft","priority":3,"description":"{unique}","location":{location}}}'
    response = await harness.client.post(
        "/api/v1/incidents",
        content=text.encode(),
        headers={**await harness.headers("operator"), "Content-Type": "application/json"},
    )
    assert response.status_code in (400, 422), response.text
    assert response.json()["error"]["code"] in ("validation_error", "invalid_json")
    assert await count_incidents(harness, description=unique) == 0


async def test_bad_idempotency_key_header_is_rejected(
    harness: Harness, area: tuple[float, float]
) -> None:
    headers = {**await harness.headers("operator"), "Idempotency-Key": "x" * 200}
    response = await harness.client.post("/api/v1/incidents", json=body(area), headers=headers)
    assert_error(response, 422, "validation_error")


async def test_lifecycle_resolve_then_close(harness: Harness, area: tuple[float, float]) -> None:
    incident = await harness.make_incident(area)
    resolved = await harness.post(
        f"/api/v1/incidents/{incident['id']}/resolve", {"note": "false alarm"}, role="operator"
    )
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["status"] == "resolved" and resolved.json()["resolved_at"]
    closed = await harness.post(f"/api/v1/incidents/{incident['id']}/close", role="operator")
    assert closed.json()["status"] == "closed"
    timeline = (
        await harness.get(f"/api/v1/incidents/{incident['id']}/events", role="operator")
    ).json()
    lifecycle = [
        e
        for e in timeline["items"]
        if e["type"] in ("incident.created", "incident.resolved", "incident.closed")
    ]
    assert [e["type"] for e in lifecycle] == [
        "incident.created",
        "incident.resolved",
        "incident.closed",
    ]
    assert lifecycle[1]["data"] == {"from": "dispatching", "note": "false alarm"}
    assert all(e["actor"].startswith("user:usr_") for e in lifecycle)
    ids = [int(e["id"]) for e in timeline["items"]]
    assert ids == sorted(ids)


@pytest.mark.parametrize(
    "first,then,current",
    [
        ("cancel", "resolve", "cancelled"),
        ("cancel", "cancel", "cancelled"),
        ("resolve", "cancel", "resolved"),
    ],
)
async def test_illegal_transition_is_409_naming_the_current_state(
    harness: Harness, area: tuple[float, float], first: str, then: str, current: str
) -> None:
    incident = await harness.make_incident(area)
    assert (
        await harness.post(f"/api/v1/incidents/{incident['id']}/{first}", role="operator")
    ).status_code == 200
    response = await harness.post(f"/api/v1/incidents/{incident['id']}/{then}", role="operator")
    error = assert_error(response, 409, "invalid_transition")
    assert f"'{current}'" in error["message"]
    assert error["details"]["current_status"] == current


async def test_close_requires_resolved(harness: Harness, area: tuple[float, float]) -> None:
    incident = await harness.make_incident(area)
    error = assert_error(
        await harness.post(f"/api/v1/incidents/{incident['id']}/close", role="operator"),
        409,
        "invalid_transition",
    )
    assert "'dispatching'" in error["message"]


async def test_action_on_unknown_incident_is_404(harness: Harness) -> None:
    assert_error(
        await harness.post("/api/v1/incidents/inc_missing/cancel", role="operator"),
        404,
        "not_found",
    )


async def test_action_body_rejects_unknown_fields(
    harness: Harness, area: tuple[float, float]
) -> None:
    incident = await harness.make_incident(area)
    response = await harness.post(
        f"/api/v1/incidents/{incident['id']}/cancel", {"reason": "x"}, role="operator"
    )
    assert_error(response, 422, "validation_error")
    assert (await harness.get(f"/api/v1/incidents/{incident['id']}")).json()[
        "status"
    ] == "dispatching"


async def test_list_filters_and_pagination(harness: Harness, area: tuple[float, float]) -> None:
    station = await harness.make_station(area)
    near = [await harness.make_incident(area, priority=p) for p in (1, 2, 3)]
    far_point = (area[0] + 0.03, area[1])  # ~3.3 km north, same precinct
    harness.clock.advance(1)
    far = await harness.make_incident(far_point, priority=3)
    base = {"station_id": station["id"]}

    everything = (await harness.get("/api/v1/incidents", params=base)).json()["items"]
    assert [i["id"] for i in everything] == [far["id"], *reversed([i["id"] for i in near])]

    p3 = (await harness.get("/api/v1/incidents", params={**base, "priority": "3"})).json()["items"]
    assert {i["id"] for i in p3} == {near[2]["id"], far["id"]}

    close_by = (
        await harness.get(
            "/api/v1/incidents", params={**base, "near": f"{area[0]},{area[1]}", "radius_m": 500}
        )
    ).json()["items"]
    assert {i["id"] for i in close_by} == {i["id"] for i in near}

    await harness.post(f"/api/v1/incidents/{near[0]['id']}/cancel", role="operator")
    open_ones = (
        await harness.get("/api/v1/incidents", params={**base, "status": "new,dispatching"})
    ).json()["items"]
    assert near[0]["id"] not in {i["id"] for i in open_ones} and len(open_ones) == 3

    seen, cursor = [], None
    for _ in range(5):
        params = {**base, "limit": 1, **({"cursor": cursor} if cursor else {})}
        page = (await harness.get("/api/v1/incidents", params=params)).json()
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [i["id"] for i in everything]

    since = (
        await harness.get("/api/v1/incidents", params={**base, "since": far["created_at"]})
    ).json()["items"]
    assert [i["id"] for i in since] == [far["id"]]


@pytest.mark.parametrize(
    "params,field",
    [
        ({"status": "open"}, "status"),
        ({"priority": "9"}, "priority"),
        ({"priority": "high"}, "priority"),
        ({"near": "39.1"}, "near"),
        ({"near": "91,0"}, "near"),
        ({"near": "nan,0"}, "near"),
        ({"radius_m": "-5"}, "radius_m"),
        ({"limit": "501"}, "limit"),
        ({"limit": "0"}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"since": "2026-01-01T00:00:00"}, "since"),
        ({"category": "x"}, "category"),
    ],
)
async def test_bad_list_queries_are_422(
    harness: Harness, params: dict[str, str], field: str
) -> None:
    error = assert_error(
        await harness.get("/api/v1/incidents", params=params), 422, "validation_error"
    )
    assert error["message"].startswith(f"{field}:"), error


CALENDAR_EDGES = [
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "0001-01-01T00:00:00+14:00",
    "0001-01-01T13:59:59+14:00",
    "9999-12-31T23:59:59-14:00",
    "9999-12-31T12:00:00-12:00",
    "0001-01-01T00:00:00.000001-00:01",
]


@pytest.mark.parametrize("field", ["since", "until"])
@pytest.mark.parametrize("value", CALENDAR_EDGES)
async def test_since_and_until_at_the_calendar_edges_are_valid_or_422(
    harness: Harness, field: str, value: str
) -> None:
    response = await harness.get("/api/v1/incidents", params={field: value, "limit": 1})
    if response.status_code == 422:
        error = assert_error(response, 422, "validation_error")
        assert error["message"].startswith(f"{field}:"), error
    else:
        assert response.status_code == 200, response.text


async def test_get_incident_and_unknown_is_404(harness: Harness, area: tuple[float, float]) -> None:
    incident = await harness.make_incident(area)
    fetched = (await harness.get(f"/api/v1/incidents/{incident['id']}")).json()
    assert fetched["id"] == incident["id"] and math.isclose(fetched["location"]["lat"], area[0])
    assert_error(await harness.get("/api/v1/incidents/inc_nope"), 404, "not_found")


async def test_reporter_may_be_a_name_or_an_object(
    harness: Harness, area: tuple[float, float]
) -> None:
    named = await harness.make_incident(area, reporter="Wang Fang")
    full = await harness.make_incident(
        area, reporter={"name": "Li Lei", "phone": "+86 138 0000 0000"}
    )
    assert named["reporter"] == {"name": "Wang Fang"}
    assert full["reporter"] == {"name": "Li Lei", "phone": "+86 138 0000 0000"}
    bad = await harness.post(
        "/api/v1/incidents", body(area, reporter={"email": "x"}), role="operator"
    )
    assert_error(bad, 422, "validation_error")
