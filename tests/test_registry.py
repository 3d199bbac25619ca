"""Registry CRUD: companies, guards, stations (with polygon validation), units."""

from __future__ import annotations

from typing import Any

import pytest

from tests.harness import Harness, square
from tests.test_errors import assert_error

pytestmark = pytest.mark.usefixtures("backend")


async def test_company_crud_and_filters(harness: Harness, unique: str) -> None:
    created = await harness.make_company(name=f"Haihe Security {unique}", licence_no=f"TJ-{unique}")
    assert created["status"] == "active" and created["licence_expires_on"] == "2030-01-01"
    fetched = (await harness.get(f"/api/v1/companies/{created['id']}", role="operator")).json()
    assert fetched == created
    patched = await harness.patch(
        f"/api/v1/companies/{created['id']}", {"status": "suspended"}, role="supervisor"
    )
    assert patched.status_code == 200 and patched.json()["status"] == "suspended"
    assert patched.json()["updated_at"] >= created["updated_at"]
    suspended = (
        await harness.get("/api/v1/companies", params={"status": "suspended", "limit": 500})
    ).json()
    assert created["id"] in {c["id"] for c in suspended["items"]}
    duplicate = await harness.post(
        "/api/v1/companies",
        {"name": "X", "licence_no": f"TJ-{unique}", "licence_expires_on": "2030-01-01"},
    )
    assert_error(duplicate, 409, "already_exists")


@pytest.mark.parametrize(
    "body,field",
    [
        ({"name": "X", "licence_no": "L1"}, "licence_expires_on"),
        ({"name": "X", "licence_no": "L1", "licence_expires_on": "tomorrow"}, "licence_expires_on"),
        ({"name": "", "licence_no": "L1", "licence_expires_on": "2030-01-01"}, "name"),
        (
            {"name": "X", "licence_no": "has space", "licence_expires_on": "2030-01-01"},
            "licence_no",
        ),
        (
            {
                "name": "X",
                "licence_no": "L1",
                "licence_expires_on": "2030-01-01",
                "status": "closed",
            },
            "status",
        ),
        (
            {"name": "X", "licence_no": "L1", "licence_expires_on": "2030-01-01", "owner": "me"},
            "owner",
        ),
    ],
)
async def test_bad_company_is_422(harness: Harness, body: dict[str, Any], field: str) -> None:
    error = assert_error(await harness.post("/api/v1/companies", body), 422, "validation_error")
    assert error["message"].startswith(f"{field}:")


async def test_patch_refuses_null_for_required_fields(harness: Harness) -> None:
    company = await harness.make_company()
    error = assert_error(
        await harness.patch(f"/api/v1/companies/{company['id']}", {"name": None}),
        422,
        "validation_error",
    )
    assert error["message"].startswith("name:")


async def test_guard_crud_filters_and_pagination(harness: Harness) -> None:
    company = await harness.make_company()
    medic = await harness.make_guard(
        company["id"], skills=["aed", "first_aid", "first_aid"], phone="+86 138 0000 0001"
    )
    driver = await harness.make_guard(company["id"], skills=["patrol_vehicle"])
    assert medic["skills"] == ["aed", "first_aid"]
    by_skill = (
        await harness.get("/api/v1/guards", params={"company_id": company["id"], "skill": "aed"})
    ).json()
    assert [g["id"] for g in by_skill["items"]] == [medic["id"]]
    patched = await harness.patch(
        f"/api/v1/guards/{driver['id']}", {"status": "suspended", "phone": None}
    )
    assert patched.json()["status"] == "suspended" and patched.json()["phone"] is None
    active = (
        await harness.get(
            "/api/v1/guards", params={"company_id": company["id"], "status": "active"}
        )
    ).json()
    assert [g["id"] for g in active["items"]] == [medic["id"]]
    first = (
        await harness.get("/api/v1/guards", params={"company_id": company["id"], "limit": 1})
    ).json()
    second = (
        await harness.get(
            "/api/v1/guards",
            params={"company_id": company["id"], "limit": 1, "cursor": first["next_cursor"]},
        )
    ).json()
    assert [first["items"][0]["id"], second["items"][0]["id"]] == [medic["id"], driver["id"]]
    assert second["next_cursor"] is None


@pytest.mark.parametrize(
    "overrides,field",
    [
        ({"skills": ["flying"]}, "skills.0"),
        ({"skills": "first_aid"}, "skills"),
        ({"phone": "call me"}, "phone"),
        ({"certificate_expires_on": None}, "certificate_expires_on"),
        ({"badge_no": ""}, "badge_no"),
        ({"name": "x" * 201}, "name"),
        ({"status": "retired"}, "status"),
    ],
)
async def test_bad_guard_is_422(harness: Harness, overrides: dict[str, Any], field: str) -> None:
    company = await harness.make_company()
    body = {
        "company_id": company["id"],
        "name": "Li Na",
        "badge_no": "B-1",
        "skills": [],
        "certificate_expires_on": "2030-01-01",
        **overrides,
    }
    error = assert_error(await harness.post("/api/v1/guards", body), 422, "validation_error")
    assert error["message"].startswith(f"{field}:"), error


async def test_guard_for_unknown_company_is_422_and_duplicate_badge_409(
    harness: Harness, unique: str
) -> None:
    body = {
        "company_id": "cmp_missing",
        "name": "Li Na",
        "badge_no": f"B-{unique}",
        "certificate_expires_on": "2030-01-01",
    }
    error = assert_error(await harness.post("/api/v1/guards", body), 422, "validation_error")
    assert error["message"].startswith("company_id:")
    await harness.make_guard(badge_no=f"B-{unique}")
    company = await harness.make_company()
    assert_error(
        await harness.post("/api/v1/guards", {**body, "company_id": company["id"]}),
        409,
        "already_exists",
    )


async def test_company_manager_sees_and_edits_only_own_guards(harness: Harness) -> None:
    mine, theirs = await harness.make_company(), await harness.make_company()
    own_guard = await harness.make_guard(mine["id"])
    other_guard = await harness.make_guard(theirs["id"])
    role = {"company_id": mine["id"]}
    headers = await harness.headers("company_manager", **role)
    listed_response = await harness.client.get(
        "/api/v1/guards", params={"limit": 500}, headers=headers
    )
    assert listed_response.status_code == 200, listed_response.text
    listed = listed_response.json()["items"]
    assert {g["company_id"] for g in listed} == {mine["id"]}
    assert own_guard["id"] in {g["id"] for g in listed}
    # Another company's guard does not exist for this manager (tests/test_authorization.py
    # checks that for every route).
    assert_error(
        await harness.client.get(f"/api/v1/guards/{other_guard['id']}", headers=headers),
        404,
        "not_found",
    )
    assert_error(
        await harness.client.patch(
            f"/api/v1/guards/{other_guard['id']}", json={"name": "x"}, headers=headers
        ),
        404,
        "not_found",
    )
    assert_error(
        await harness.client.get(
            "/api/v1/guards", params={"company_id": theirs["id"]}, headers=headers
        ),
        403,
        "forbidden",
    )
    steal = {
        "company_id": theirs["id"],
        "name": "Wang",
        "badge_no": "B-x",
        "certificate_expires_on": "2030-01-01",
    }
    refused = assert_error(
        await harness.client.post("/api/v1/guards", json=steal, headers=headers),
        422,
        "validation_error",
    )
    assert refused["message"] == f"company_id: no such company '{theirs['id']}'"
    token = await harness.client.post(f"/api/v1/guards/{own_guard['id']}/tokens", headers=headers)
    assert token.status_code == 201 and token.json()["token"].startswith("gdt_")
    assert_error(
        await harness.client.post(f"/api/v1/guards/{other_guard['id']}/tokens", headers=headers),
        404,
        "not_found",
    )
    companies = (await harness.client.get("/api/v1/companies", headers=headers)).json()["items"]
    assert [c["id"] for c in companies] == [mine["id"]]


async def test_station_crud(harness: Harness, area: tuple[float, float]) -> None:
    station = await harness.make_station(area, contact_phone="+86 22 2345 6789")
    assert station["jurisdiction"]["type"] == "Polygon"
    moved = await harness.patch(
        f"/api/v1/stations/{station['id']}",
        {"jurisdiction": square((area[0] + 0.5, area[1]), 0.05)},
    )
    assert moved.status_code == 200
    incident = await harness.make_incident((area[0] + 0.5, area[1]))
    assert incident["station_id"] == station["id"] and incident["station_match"] == "contains"
    assert_error(
        await harness.post(
            "/api/v1/stations", {"name": station["name"], "jurisdiction": square(area, 0.01)}
        ),
        409,
        "already_exists",
    )
    assert_error(await harness.get("/api/v1/stations/stn_missing"), 404, "not_found")


def ring(*points: tuple[float, float]) -> list[list[float]]:
    return [list(p) for p in points]


BAD_POLYGONS: list[tuple[str, Any]] = [
    ("not an object", "POLYGON((0 0, 1 0, 1 1, 0 0))"),
    ("point", {"type": "Point", "coordinates": [117.2, 39.1]}),
    ("unclosed", {"type": "Polygon", "coordinates": [ring((0, 0), (1, 0), (1, 1), (0, 1))]}),
    ("too few positions", {"type": "Polygon", "coordinates": [ring((0, 0), (1, 0), (0, 0))]}),
    (
        "self-intersecting bowtie",
        {"type": "Polygon", "coordinates": [ring((0, 0), (1, 1), (1, 0), (0, 1), (0, 0))]},
    ),
    (
        "latitude out of range",
        {"type": "Polygon", "coordinates": [ring((0, 0), (1, 0), (1, 95), (0, 0))]},
    ),
    (
        "longitude out of range",
        {"type": "Polygon", "coordinates": [ring((0, 0), (181, 0), (181, 1), (0, 0))]},
    ),
    ("string coordinate", {"type": "Polygon", "coordinates": [[[0, 0], [1, "0"], [1, 1], [0, 0]]]}),
    ("empty coordinates", {"type": "Polygon", "coordinates": []}),
    ("zero area", {"type": "Polygon", "coordinates": [ring((0, 0), (1, 0), (2, 0), (0, 0))]}),
    (
        "multipolygon with bad member",
        {
            "type": "MultiPolygon",
            "coordinates": [[ring((0, 0), (1, 0), (1, 1), (0, 0))], [ring((5, 5), (6, 6))]],
        },
    ),
]


@pytest.mark.parametrize("case,geojson", BAD_POLYGONS, ids=[c[0] for c in BAD_POLYGONS])
async def test_invalid_jurisdiction_is_422_with_a_reason(
    harness: Harness, case: str, geojson: Any, unique: str
) -> None:
    response = await harness.post(
        "/api/v1/stations", {"name": f"Bad {unique}", "jurisdiction": geojson}
    )
    error = assert_error(response, 422, "validation_error")
    assert error["message"].startswith("jurisdiction:"), error
    listed = (await harness.get("/api/v1/stations", params={"limit": 500})).json()["items"]
    assert f"Bad {unique}" not in {s["name"] for s in listed}


async def test_multipolygon_jurisdiction_is_accepted(
    harness: Harness, area: tuple[float, float], unique: str
) -> None:
    lat, lon = area
    a = square((lat, lon), 0.01)["coordinates"]
    b = square((lat, lon + 0.1), 0.01)["coordinates"]
    response = await harness.post(
        "/api/v1/stations",
        {
            "name": f"Multi {unique}",
            "jurisdiction": {"type": "MultiPolygon", "coordinates": [a, b]},
        },
    )
    assert response.status_code == 201, response.text
    incident = await harness.make_incident((lat, lon + 0.1))
    assert incident["station_id"] == response.json()["id"]


async def test_unit_crud_and_station_scoped_integration(
    harness: Harness, area: tuple[float, float], unique: str
) -> None:
    station = await harness.make_station(area)
    other = await harness.make_station((area[0] + 0.5, area[1]))
    created = await harness.post(
        "/api/v1/units",
        {
            "call_sign": f"HP-{unique}",
            "station_id": station["id"],
            "kind": "patrol_car",
            "location": {"lat": area[0], "lon": area[1]},
        },
    )
    assert created.status_code == 201, created.text
    unit = created.json()
    assert unit["status"] == "available" and unit["location"] == {"lat": area[0], "lon": area[1]}
    key = await harness.api_key(["units:write", "registry:read"], station_id=station["id"])
    headers = {"Authorization": f"Bearer {key}"}
    busy = await harness.client.patch(
        f"/api/v1/units/{unit['id']}", json={"status": "busy", "location": None}, headers=headers
    )
    assert (
        busy.status_code == 200
        and busy.json()["status"] == "busy"
        and busy.json()["location"] is None
    )
    assert_error(
        await harness.client.patch(
            f"/api/v1/units/{unit['id']}", json={"station_id": other["id"]}, headers=headers
        ),
        403,
        "forbidden",
    )
    listed = (
        await harness.get("/api/v1/units", params={"station_id": station["id"], "status": "busy"})
    ).json()["items"]
    assert [u["id"] for u in listed] == [unit["id"]]
    bad = await harness.post(
        "/api/v1/units",
        {"call_sign": f"X-{unique}", "station_id": station["id"], "kind": "helicopter"},
    )
    assert_error(bad, 422, "validation_error")
    missing = await harness.post(
        "/api/v1/units", {"call_sign": f"Y-{unique}", "station_id": "stn_missing", "kind": "foot"}
    )
    assert_error(missing, 422, "validation_error")
    bad_location = await harness.patch(
        f"/api/v1/units/{unit['id']}", {"location": {"lat": 100, "lon": 0}}
    )
    assert_error(bad_location, 422, "validation_error")


async def test_list_limit_has_a_hard_maximum(harness: Harness) -> None:
    for path in ("/api/v1/companies", "/api/v1/guards", "/api/v1/stations", "/api/v1/units"):
        error = assert_error(
            await harness.get(path, params={"limit": 501}), 422, "validation_error"
        )
        assert error["message"].startswith("limit:")
