"""Authorization (OWASP API1, API3, API5): another tenant's object answers exactly as a
missing one — checked for every route the app has, so a new route without a rule fails —
`source` follows the caller, company managers see no police unit positions, and
`/metrics` needs a credential with `metrics:read`."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from app.auth.permissions import INTEGRATION_SCOPES, ROLE_PERMISSIONS
from app.clock import isoformat
from app.models import Incident, User
from tests.harness import Harness
from tests.phones import guard_at, offset, phone_for
from tests.test_auth import PUBLIC, http_routes, rule_of
from tests.test_errors import assert_error

pytestmark = pytest.mark.usefixtures("backend")

# What partitions each object a path names: a security company (its managers and guards
# see their own), a police station (station-scoped keys and users see their own), or both.
# A route naming a parameter missing here fails the test: say who owns the new object.
COMPANY, STATION, BOTH = {"company"}, {"station"}, {"company", "station"}
OWNER = {
    "company_id": COMPANY,
    "guard_id": COMPANY,
    "token_id": COMPANY,
    "user_id": COMPANY,  # a company manager's account
    "incident_id": STATION,
    "offer_id": STATION,
    "subscription_id": STATION,
    "delivery_id": STATION,
    "station_id": STATION,
    "unit_id": STATION,
    "key_id": STATION,
    "intel_id": STATION,  # a guard's intel report, triaged by the station it falls in
    "broadcast_id": STATION,
    "account_id": BOTH,  # an alarm account: a company's monitored site, in a precinct
    "alarm_id": BOTH,
}

# Where another tenant's object is reachable on purpose: (method, path) → the answer an
# outsider holding the permission gets, and why.
SHARED: dict[tuple[str, str], tuple[int, str]] = {
    ("GET", "/api/v1/stations/{station_id}"): (
        200,
        "precincts are one shared map: every caller locates incidents by them",
    ),
    ("GET", "/api/v1/units/{unit_id}"): (
        200,
        "units are visible across stations for mutual aid (company managers see no position)",
    ),
    ("PATCH", "/api/v1/units/{unit_id}"): (
        403,
        "visible (above), so changing another station's unit is refused, not hidden",
    ),
}

# Bodies and query parameters for routes that validate them before the object is looked
# up (else both answers would be the same 422).
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/api/v1/incidents/{incident_id}/assign"): {"guard_id": "grd_placeholder"},
    ("POST", "/api/v1/incidents/{incident_id}/instructions"): {"text": "stay by the door"},
    ("POST", "/api/v1/intel/{intel_id}/triage"): {"state": "useful", "note": "thank you"},
    ("PATCH", "/api/v1/alarm-accounts/{account_id}"): {"status": "suspended"},
    ("POST", "/api/v1/incidents/{incident_id}/commendations"): {
        "guard_id": "grd_placeholder",
        "text": "well done",
    },
    ("POST", "/api/v1/incidents/{incident_id}/complaints"): {
        "guard_id": "grd_placeholder",
        "text": "late",
    },
}
QUERIES: dict[tuple[str, str], Callable[[Harness], dict[str, str]]] = {
    ("GET", "/api/v1/guards/{guard_id}/track"): lambda harness: {
        "since": isoformat(harness.now() - dt.timedelta(hours=1))
    },
}


@dataclass
class Outsider:
    """A caller of the other tenant: its token, what it may do, and what partitions it."""

    name: str
    token: str
    permissions: frozenset[str]
    tenancy: str  # "company" or "station"


async def tenant_a(harness: Harness, area: tuple[float, float]) -> dict[str, str]:
    """One object of each kind, all belonging to company A and station A."""
    admin = await harness.headers("admin")
    company = await harness.make_company()
    station = await harness.make_station(area)
    webhook = await harness.post(
        "/api/v1/webhooks",
        {
            "url": "http://127.0.0.1:9/hook",
            "event_types": ["incident.created"],
            "station_id": station["id"],
        },
    )
    assert webhook.status_code == 201, webhook.text
    phone = await guard_at(harness, offset(area, north_m=100), company["id"])
    incident = await harness.make_incident(area)
    offer = await phone.expect("offer")
    await phone.send(
        {
            "type": "report",
            "kind": "intel",
            "subject": "suspicious_vehicle",
            "description": "white van, no plates, circling the school gate",
            "lat": area[0],
            "lon": area[1],
        }
    )
    intel = await phone.expect("report.accepted", kind="intel")
    await phone.close()
    broadcast = await harness.post(
        "/api/v1/broadcasts",
        {
            "location": {"lat": area[0], "lon": area[1]},
            "radius_m": 500.0,
            "text": "road closed at the north gate",
            "expires_at": isoformat(harness.now() + dt.timedelta(hours=1)),
        },
    )
    assert broadcast.status_code == 201, broadcast.text
    token = await harness.post(f"/api/v1/guards/{phone.id}/tokens")
    unit = await harness.post(
        "/api/v1/units",
        {
            "call_sign": f"A-{phone.id[-6:]}",
            "station_id": station["id"],
            "kind": "patrol_car",
            "location": {"lat": area[0], "lon": area[1]},
        },
    )
    deliveries = await harness.client.get(
        f"/api/v1/webhooks/{webhook.json()['id']}/deliveries", headers=admin
    )
    site = await harness.post(
        "/api/v1/alarm-accounts",
        {
            "company_id": company["id"],
            "account": f"AC-{phone.id[-8:]}",
            "site_name": "Binhai jewellery store",
            "location": {"lat": area[0], "lon": area[1]},
        },
    )
    assert site.status_code == 201, site.text
    receiver = await harness.api_key(["alarms:write"])
    alarm = await harness.client.post(
        "/api/v1/alarms",
        json={
            "account": site.json()["account"],
            "event_code": "BA",
            "occurred_at": isoformat(harness.now()),
            "verification": "none",
        },
        headers={"Authorization": f"Bearer {receiver}"},
    )
    assert alarm.status_code == 201, alarm.text
    key = await harness.api_key(["incidents:read"], station_id=station["id"])
    manager = await harness.user("company_manager", company_id=company["id"])
    async with harness.ctx.db.transaction(readonly=True) as session:
        user_id = await session.scalar(select(User.id).where(User.username == manager))
    return {
        "company_id": company["id"],
        "guard_id": phone.id,
        "token_id": token.json()["token_id"],
        "user_id": str(user_id),
        "incident_id": incident["id"],
        "offer_id": offer["offer_id"],
        "subscription_id": webhook.json()["id"],
        "delivery_id": deliveries.json()["items"][0]["id"],
        "station_id": station["id"],
        "unit_id": unit.json()["id"],
        "key_id": key.split(".")[0],
        "intel_id": intel["intel_id"],
        "broadcast_id": broadcast.json()["id"],
        "account_id": site.json()["id"],
        "alarm_id": alarm.json()["id"],
    }


async def tenant_b(harness: Harness, area: tuple[float, float]) -> list[Outsider]:
    """Callers of company B and station B, each holding as much as its kind may."""
    company = await harness.make_company()
    station = await harness.make_station((area[0] + 0.5, area[1]))
    guard = await harness.make_guard(company["id"])
    device = (await harness.post(f"/api/v1/guards/{guard['id']}/tokens")).json()["token"]
    manager = await harness.login(await harness.user("company_manager", company_id=company["id"]))
    operator = await harness.login(await harness.user("operator", station_id=station["id"]))
    key = await harness.api_key(sorted(INTEGRATION_SCOPES), station_id=station["id"])
    return [
        Outsider("company manager", manager, ROLE_PERMISSIONS["company_manager"], "company"),
        Outsider("guard", device, ROLE_PERMISSIONS["guard"], "company"),
        Outsider("station key", key, INTEGRATION_SCOPES, "station"),
        Outsider("station operator", operator, ROLE_PERMISSIONS["operator"], "station"),
    ]


def object_routes(harness: Harness) -> list[tuple[str, Any, list[str]]]:
    """(method, route, path parameters) of every route whose path names an object."""
    found = []
    for route in http_routes(harness):
        if route.path in PUBLIC:
            continue
        params = re.findall(r"\{(\w+)\}", route.path)
        if params:
            found.extend((method, route, params) for method in sorted(route.methods - {"HEAD"}))
    return found


async def call(
    harness: Harness, method: str, route: Any, ids: dict[str, str], token: str
) -> httpx.Response:
    key = (method, route.path)
    return await harness.client.request(
        method,
        route.path.format(**ids),
        json=BODIES.get(key, {}),
        params=QUERIES[key](harness) if key in QUERIES else None,
        headers={"Authorization": f"Bearer {token}"},
    )


def shape(response: httpx.Response, ids: dict[str, str]) -> tuple[int, str]:
    """Status and body with the ids in it written as their parameter names."""
    text = json.dumps(response.json(), sort_keys=True)
    for param, value in sorted(ids.items(), key=lambda item: -len(item[1])):
        text = text.replace(value, f"<{param}>")
    return response.status_code, text


async def test_another_tenants_object_answers_exactly_as_a_missing_one(
    harness: Harness, area: tuple[float, float]
) -> None:
    theirs = await tenant_a(harness, area)
    outsiders = await tenant_b(harness, area)
    routes = object_routes(harness)
    assert len(routes) >= 25  # the API's object routes, not an empty loop
    unowned = sorted({p for _, _, params in routes for p in params} - set(OWNER))
    assert unowned == [], f"say in OWNER who owns the objects these parameters name: {unowned}"

    failures = []
    for method, route, params in routes:
        key = (method, route.path)
        rule = rule_of(route)
        assert rule is not None, key
        real = {p: theirs[p] for p in params}
        missing = {p: f"{value}0" for p, value in real.items()}
        for outsider in outsiders:
            response = await call(harness, method, route, real, outsider.token)
            what = f"{outsider.name}: {method} {route.path} -> {response.status_code}"
            if not rule & outsider.permissions:
                if response.status_code != 403:
                    failures.append(f"{what}, expected 403 (no permission)")
                continue
            if not any(outsider.tenancy in OWNER[p] for p in params):
                continue  # not partitioned this way: a station's key reads any company's guard
            if key in SHARED:
                if response.status_code != SHARED[key][0]:
                    failures.append(f"{what}, expected {SHARED[key][0]} ({SHARED[key][1]})")
                continue
            expected = shape(await call(harness, method, route, missing, outsider.token), missing)
            if response.status_code != 404 or shape(response, real) != expected:
                failures.append(f"{what}, expected exactly the missing object's {expected}")
    assert not failures, "\n".join(failures)


async def test_a_guard_cannot_touch_another_guards_offer(
    harness: Harness, area: tuple[float, float]
) -> None:
    holder = await guard_at(harness, offset(area, north_m=50))
    await harness.make_incident(area)
    offer = await holder.expect("offer")
    other = await phone_for(harness, await harness.make_guard())
    await other.connect()
    answers = []
    for offer_id in (offer["offer_id"], f"{offer['offer_id']}0"):
        await other.send({"type": "offer.accept", "offer_id": offer_id})
        error = await other.expect("error")
        answers.append((error["code"], error["message"].replace(offer_id, "<offer_id>")))
    assert answers[0] == answers[1] == ("not_found", "offer '<offer_id>' not found")
    await holder.sync()
    assert not [f for f in holder.inbox if f["type"] == "offer.withdrawn"]  # still theirs
    await holder.close()
    await other.close()


# source ---------------------------------------------------------------------------------


async def count_incidents(harness: Harness, external_ref: str) -> int:
    async with harness.ctx.db.transaction(readonly=True) as session:
        stmt = select(func.count()).where(Incident.external_ref == external_ref)
        return int(await session.scalar(stmt) or 0)


@pytest.mark.parametrize(
    ("caller", "claimed", "channel"),
    [
        ("key", "guard", "police"),  # a CAD key posing as a guard on scene
        ("key", "console", "police"),
        ("key", "alarm", "police"),
        ("operator", "police", "console"),
        ("operator", "guard", "console"),
    ],
)
async def test_source_cannot_name_another_channel(
    harness: Harness,
    area: tuple[float, float],
    unique: str,
    caller: str,
    claimed: str,
    channel: str,
) -> None:
    if caller == "key":
        token = await harness.api_key(["incidents:write", "incidents:read"])
        headers = {"Authorization": f"Bearer {token}"}
    else:
        headers = await harness.headers(caller)
    body = {
        "category": "theft",
        "priority": 3,
        "location": {"lat": area[0], "lon": area[1]},
        "description": "bicycle stolen at the north gate",
        "external_ref": f"SRC-{unique}",
    }
    response = await harness.client.post(
        "/api/v1/incidents", json={**body, "source": claimed}, headers=headers
    )
    error = assert_error(response, 422, "validation_error")
    assert error["details"][0]["field"] == "source"
    assert f"'{channel}'" in error["message"]
    assert await count_incidents(harness, f"SRC-{unique}") == 0  # nothing written

    # Its own channel, named or left out, is taken.
    named = await harness.client.post(
        "/api/v1/incidents", json={**body, "source": channel}, headers=headers
    )
    assert named.status_code == 201 and named.json()["source"] == channel, named.text
    again = await harness.client.post("/api/v1/incidents", json=body, headers=headers)
    assert again.status_code == 201 and again.json()["id"] == named.json()["id"]


# Unit positions -----------------------------------------------------------------------


async def test_a_company_manager_sees_no_police_unit_position(
    harness: Harness, area: tuple[float, float], unique: str
) -> None:
    station = await harness.make_station(area)
    created = await harness.post(
        "/api/v1/units",
        {
            "call_sign": f"P-{unique}",
            "station_id": station["id"],
            "kind": "patrol_car",
            "location": {"lat": area[0], "lon": area[1]},
        },
    )
    assert created.status_code == 201, created.text
    unit = created.json()
    manager = await harness.headers(
        "company_manager", company_id=(await harness.make_company())["id"]
    )
    for headers, sees in ((await harness.headers("operator"), True), (manager, False)):
        one = (await harness.client.get(f"/api/v1/units/{unit['id']}", headers=headers)).json()
        listed = (
            await harness.client.get(
                "/api/v1/units", params={"station_id": station["id"]}, headers=headers
            )
        ).json()["items"]
        assert [u["id"] for u in listed] == [unit["id"]]
        for seen in (one, listed[0]):
            assert seen["call_sign"] == unit["call_sign"]
            if sees:
                assert seen["location"] == {"lat": area[0], "lon": area[1]}
                assert seen["located_at"] is not None
            else:
                assert seen["location"] is None and seen["located_at"] is None


# /metrics -----------------------------------------------------------------------------


async def test_metrics_need_the_metrics_read_scope(harness: Harness) -> None:
    anonymous = await harness.client.get("/metrics")
    assert_error(anonymous, 401, "unauthorized")
    assert anonymous.headers["WWW-Authenticate"] == "Bearer"
    assert "dispatch_" not in anonymous.text
    without = await harness.api_key(["incidents:read"])
    assert_error(
        await harness.client.get("/metrics", headers={"Authorization": f"Bearer {without}"}),
        403,
        "forbidden",
    )
    assert_error(await harness.get("/metrics", role="operator"), 403, "forbidden")
    scraper = await harness.api_key(["metrics:read"])
    response = await harness.client.get("/metrics", headers={"Authorization": f"Bearer {scraper}"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "dispatch_http_requests_total" in response.text
    assert (await harness.get("/metrics", role="admin")).status_code == 200
