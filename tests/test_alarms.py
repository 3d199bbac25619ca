"""Alarm intake (issue 11 §3): accounts, accepted and rejected alarms, duplicates settled by
the database, keyholder cancels that stand guards down, and webhooks to the alarm company."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select

from app.alarms.priority import classify, priority_for
from app.clock import isoformat
from app.models import Alarm, Event
from tests.harness import Harness, start_harness
from tests.phones import guard_at, offset
from tests.receiver import Receiver, verify_signature
from tests.test_errors import assert_error


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    running = Receiver()
    await running.start()
    yield running
    await running.stop()


# The priority mapping: pure, no database ------------------------------------------------


@pytest.mark.parametrize(
    ("code", "verification", "expected"),
    [
        ("HA", "none", 1),
        ("PA", "video", 1),
        ("FA", "none", 1),
        ("E110", "none", 1),
        ("MA", "none", 2),
        ("100", "audio", 1),
        ("BA", "none", 3),
        ("BA", "video", 2),
        ("1130", "guard", 2),
        ("E130", "none", 3),
        ("TA", "none", 4),
        ("TA", "audio", 3),
        ("E380", "none", 4),
    ],
)
def test_priority_follows_the_event_class_and_verification_ranks_higher(
    code: str, verification: Any, expected: int
) -> None:
    assert priority_for(code, verification) == expected


def test_event_codes_fall_into_classes() -> None:
    assert classify("ba") == "burglary" and classify("E122") == "holdup"
    assert classify("3130") == "other"  # a Contact ID restore is not a new alarm
    assert classify("XYZ") == "other"


# Helpers -----------------------------------------------------------------------------


def alarm_body(account: str, harness: Harness, **fields: Any) -> dict[str, Any]:
    return {
        "account": account,
        "zone": "3",
        "event_code": "BA",
        "occurred_at": isoformat(harness.now() - dt.timedelta(seconds=5)),
        "verification": "none",
        **fields,
    }


async def make_account(
    harness: Harness, where: tuple[float, float], company_id: str | None = None, **fields: Any
) -> dict[str, Any]:
    if company_id is None:
        company_id = (await harness.make_company())["id"]
    body = {
        "company_id": company_id,
        "account": f"AC-{uuid.uuid4().hex[:10]}",
        "site_name": "Binhai jewellery store",
        "location": {"lat": where[0], "lon": where[1]},
        "contacts": [{"name": "Li Na", "phone": "+86 22 5555 0101", "role": "keyholder"}],
        **fields,
    }
    response = await harness.post("/api/v1/alarm-accounts", body)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def alarm_key(harness: Harness, station_id: str | None = None) -> dict[str, str]:
    key = await harness.api_key(["alarms:write", "webhooks:manage"], station_id=station_id)
    return {"Authorization": f"Bearer {key}"}


async def send(harness: Harness, key: dict[str, str], body: dict[str, Any]) -> Any:
    return await harness.client.post("/api/v1/alarms", json=body, headers=key)


async def events_of(harness: Harness, type_: str, alarm_id: str) -> list[Event]:
    async with harness.ctx.db.transaction(readonly=True) as session:
        rows = (await session.scalars(select(Event).where(Event.type == type_))).all()
    return [e for e in rows if e.data.get("alarm_id") == alarm_id]


# Accounts ----------------------------------------------------------------------------


@pytest.mark.usefixtures("backend")
async def test_account_is_created_listed_and_its_number_is_unique(
    harness: Harness, area: tuple[float, float]
) -> None:
    station = await harness.make_station(area)
    account = await make_account(harness, area)
    assert account["id"].startswith("alac_") and account["status"] == "active"
    assert account["station_id"] == station["id"]
    assert account["contacts"] == [
        {"name": "Li Na", "phone": "+86 22 5555 0101", "role": "keyholder"}
    ]
    got = await harness.get(f"/api/v1/alarm-accounts/{account['id']}", role="operator")
    assert got.status_code == 200 and got.json() == account
    listed = await harness.get(
        "/api/v1/alarm-accounts", params={"company_id": account["company_id"]}
    )
    assert [a["id"] for a in listed.json()["items"]] == [account["id"]]
    by_number = await harness.get("/api/v1/alarm-accounts", params={"account": account["account"]})
    assert [a["id"] for a in by_number.json()["items"]] == [account["id"]]

    again = await harness.post(
        "/api/v1/alarm-accounts",
        {
            "company_id": account["company_id"],
            "account": account["account"],
            "site_name": "elsewhere",
            "location": {"lat": area[0], "lon": area[1]},
        },
    )
    assert_error(again, 409, "already_exists")


@pytest.mark.usefixtures("backend")
async def test_accounts_paginate_with_a_cursor(harness: Harness, area: tuple[float, float]) -> None:
    company = await harness.make_company()
    made = [(await make_account(harness, area, company["id"]))["id"] for _ in range(3)]
    first = await harness.get(
        "/api/v1/alarm-accounts", params={"company_id": company["id"], "limit": 2}
    )
    page = first.json()
    assert [a["id"] for a in page["items"]] == made[::-1][:2] and page["next_cursor"]
    second = await harness.get(
        "/api/v1/alarm-accounts",
        params={"company_id": company["id"], "limit": 2, "cursor": page["next_cursor"]},
    )
    assert [a["id"] for a in second.json()["items"]] == [made[0]]
    assert second.json()["next_cursor"] is None


@pytest.mark.usefixtures("backend")
async def test_company_manager_manages_its_own_company_accounts_only(
    harness: Harness, area: tuple[float, float]
) -> None:
    own = await harness.make_company()
    other = await harness.make_company()
    theirs = await make_account(harness, area, other["id"])
    manager = await harness.headers("company_manager", company_id=own["id"])
    body = {
        "company_id": own["id"],
        "account": f"AC-{uuid.uuid4().hex[:10]}",
        "site_name": "Warehouse 4",
        "location": {"lat": area[0], "lon": area[1]},
    }
    created = await harness.client.post("/api/v1/alarm-accounts", json=body, headers=manager)
    assert created.status_code == 201, created.text
    foreign = await harness.client.post(
        "/api/v1/alarm-accounts",
        json={**body, "company_id": other["id"], "account": f"AC-{uuid.uuid4().hex[:10]}"},
        headers=manager,
    )
    error = assert_error(foreign, 422, "validation_error")
    assert error["details"][0]["field"] == "company_id"
    listed = await harness.client.get("/api/v1/alarm-accounts", headers=manager)
    assert [a["id"] for a in listed.json()["items"]] == [created.json()["id"]]
    hidden = await harness.client.get(f"/api/v1/alarm-accounts/{theirs['id']}", headers=manager)
    assert_error(hidden, 404, "not_found")
    suspend = await harness.client.patch(
        f"/api/v1/alarm-accounts/{theirs['id']}", json={"status": "suspended"}, headers=manager
    )
    assert_error(suspend, 404, "not_found")
    # An operator may read accounts (to call the keyholder) but not manage them.
    operator = await harness.post("/api/v1/alarm-accounts", body, role="operator")
    assert_error(operator, 403, "forbidden")


@pytest.mark.usefixtures("backend")
async def test_bad_account_input_is_422_naming_the_field(
    harness: Harness, area: tuple[float, float]
) -> None:
    company = await harness.make_company()
    base = {
        "company_id": company["id"],
        "account": "AC-1",
        "site_name": "x",
        "location": {"lat": area[0], "lon": area[1]},
    }
    for change, field in [
        ({"location": {"lat": 91, "lon": 0}}, "lat"),
        ({"account": "has space"}, "account"),
        ({"contacts": [{"phone": "+86 1"}]}, "name"),
        ({"colour": "red"}, "colour"),
        ({"company_id": "cmp_nope"}, "company_id"),
    ]:
        response = await harness.post("/api/v1/alarm-accounts", {**base, **change})
        error = assert_error(response, 422, "validation_error")
        assert field in response.text, (change, error)


# Intake ------------------------------------------------------------------------------


@pytest.mark.usefixtures("backend")
async def test_alarm_is_accepted_as_an_incident_at_the_site(
    harness: Harness, area: tuple[float, float]
) -> None:
    station = await harness.make_station(area)
    site = offset(area, north_m=80)
    account = await make_account(harness, site)
    key = await alarm_key(harness)
    response = await send(
        harness,
        key,
        alarm_body(account["account"], harness, verification="video", description="rear door"),
    )
    assert response.status_code == 201, response.text
    alarm = response.json()
    incident = alarm.pop("incident")
    assert alarm == {
        **alarm,
        "account": account["account"],
        "account_id": account["id"],
        "company_id": account["company_id"],
        "station_id": station["id"],
        "zone": "3",
        "event_code": "BA",
        "verification": "video",
        "outcome": "accepted",
        "reason": None,
        "priority": 2,  # an intrusion alarm (3) seen on video ranks one higher
        "incident_id": incident["id"],
        "cancelled_at": None,
    }
    assert response.headers["location"] == f"/api/v1/alarms/{alarm['id']}"
    assert incident["category"] == "alarm" and incident["source"] == "alarm"
    assert incident["priority"] == 2 and incident["station_id"] == station["id"]
    assert incident["location"] == {"lat": pytest.approx(site[0]), "lon": pytest.approx(site[1])}
    assert incident["address"] == "Binhai jewellery store"
    assert "intrusion alarm" in incident["description"] and "rear door" in incident["description"]
    assert incident["status"] == "dispatching" and incident["allowed_tiers"]

    stored = await harness.get(f"/api/v1/alarms/{alarm['id']}", role="operator")
    assert stored.status_code == 200 and stored.json() == alarm
    [event] = await events_of(harness, "alarm.accepted", alarm["id"])
    assert event.incident_id == incident["id"] and event.station_id == station["id"]
    assert event.data["priority"] == 2 and event.data["alarm_class"] == "burglary"
    timeline = await harness.get(f"/api/v1/incidents/{incident['id']}/events")
    types = [e["type"] for e in timeline.json()["items"]]
    assert types[:2] == ["incident.created", "alarm.accepted"]


@pytest.mark.usefixtures("backend")
async def test_each_rejection_answers_its_reason_and_is_stored(
    harness: Harness, area: tuple[float, float]
) -> None:
    await harness.make_station(area)
    account = await make_account(harness, area)
    key = await alarm_key(harness)

    unknown = await send(harness, key, alarm_body("AC-nobody-" + uuid.uuid4().hex, harness))
    error = assert_error(unknown, 404, "unknown_account")
    unknown_id = error["details"]["alarm_id"]

    stale = alarm_body(
        account["account"],
        harness,
        occurred_at=isoformat(harness.now() - dt.timedelta(seconds=301)),
    )
    error = assert_error(await send(harness, key, stale), 422, "too_old")
    assert error["details"]["max_age_s"] == 300
    too_old_id = error["details"]["alarm_id"]

    patched = await harness.patch(
        f"/api/v1/alarm-accounts/{account['id']}", {"status": "suspended"}, role="supervisor"
    )
    assert patched.status_code == 200 and patched.json()["status"] == "suspended"
    error = assert_error(
        await send(harness, key, alarm_body(account["account"], harness)), 409, "account_suspended"
    )
    assert "suspended" in error["message"]
    suspended_id = error["details"]["alarm_id"]

    await harness.patch(f"/api/v1/alarm-accounts/{account['id']}", {"status": "active"})
    await harness.patch(f"/api/v1/companies/{account['company_id']}", {"status": "suspended"})
    error = assert_error(
        await send(harness, key, alarm_body(account["account"], harness)), 409, "account_suspended"
    )
    company_suspended_id = error["details"]["alarm_id"]

    listed = await harness.get(
        "/api/v1/alarms", params={"outcome": "rejected", "limit": 500}, role="operator"
    )
    reasons = {a["id"]: a["reason"] for a in listed.json()["items"]}
    assert reasons[unknown_id] == "unknown_account"
    assert reasons[too_old_id] == "too_old"
    assert reasons[suspended_id] == reasons[company_suspended_id] == "account_suspended"
    for alarm_id in (unknown_id, too_old_id, suspended_id):
        got = (await harness.get(f"/api/v1/alarms/{alarm_id}")).json()
        assert got["incident_id"] is None and got["outcome"] == "rejected"
        [event] = await events_of(harness, "alarm.rejected", alarm_id)
        assert event.data["reason"] == got["reason"]
    # Nothing was dispatched for any of them.
    incidents = await harness.get(
        "/api/v1/incidents",
        params={"near": f"{area[0]},{area[1]}", "radius_m": 5000, "source": "alarm"},
    )
    assert incidents.json()["items"] == []


@pytest.mark.usefixtures("backend")
async def test_bad_alarm_input_is_422_naming_the_field_and_stores_nothing(
    harness: Harness, area: tuple[float, float]
) -> None:
    account = await make_account(harness, area)
    key = await alarm_key(harness)
    before = await harness.get(
        "/api/v1/alarms", params={"account": account["account"]}, role="operator"
    )
    future = isoformat(harness.now() + dt.timedelta(minutes=10))
    for change, field in [
        ({"verification": "smell"}, "verification"),
        ({"event_code": "B A"}, "event_code"),
        ({"occurred_at": "yesterday"}, "occurred_at"),
        ({"occurred_at": "2026-11-26T10:00:00"}, "occurred_at"),  # no timezone
        ({"occurred_at": future}, "occurred_at"),
        ({"occurred_at": 1795600000}, "occurred_at"),  # a number is not a date-time
        ({"account": ""}, "account"),
        ({"priority": 1}, "priority"),
    ]:
        response = await send(harness, key, {**alarm_body(account["account"], harness), **change})
        assert_error(response, 422, "validation_error")
        assert field in response.text, (change, response.text)
    after = await harness.get(
        "/api/v1/alarms", params={"account": account["account"]}, role="operator"
    )
    assert after.json()["items"] == before.json()["items"] == []
    listed = await harness.get("/api/v1/alarms", params={"since": "0.5"}, role="operator")
    assert_error(listed, 422, "validation_error")


@pytest.mark.usefixtures("backend")
async def test_identical_alarms_at_once_are_accepted_exactly_once(
    harness: Harness, area: tuple[float, float]
) -> None:
    await harness.make_station(area)
    account = await make_account(harness, area)
    key = await alarm_key(harness)
    body = alarm_body(account["account"], harness)
    responses = await asyncio.gather(*(send(harness, key, body) for _ in range(6)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201, 409, 409, 409, 409, 409], [r.text for r in responses]
    [accepted] = [r.json() for r in responses if r.status_code == 201]
    for response in responses:
        if response.status_code == 409:
            error = assert_error(response, 409, "duplicate")
            assert error["details"]["duplicate_of"] == accepted["id"]

    # Another zone or another event is another alarm.
    other_zone = await send(harness, key, {**body, "zone": "4"})
    assert other_zone.status_code == 201, other_zone.text
    other_event = await send(harness, key, {**body, "event_code": "FA"})
    assert other_event.status_code == 201 and other_event.json()["priority"] == 1

    # Past the window the same alarm is new again.
    harness.clock.advance(121)
    later = await send(harness, key, alarm_body(account["account"], harness))
    assert later.status_code == 201, later.text
    assert later.json()["incident_id"] != accepted["incident_id"]


@pytest.mark.usefixtures("backend")
async def test_duplicates_are_settled_by_the_database_with_writers_interleaving(
    own_database_url: str, area: tuple[float, float]
) -> None:
    """As replicas will run: on PostgreSQL the racing transactions really interleave, and
    the partial unique index alone lets one of them in."""
    async with start_harness(own_database_url) as harness:
        await harness.make_station(area)
        account = await make_account(harness, area)
        key = await alarm_key(harness)
        for zone in ("1", "2", "3"):
            body = alarm_body(account["account"], harness, zone=zone)
            responses = await asyncio.gather(*(send(harness, key, body) for _ in range(8)))
            statuses = sorted(r.status_code for r in responses)
            assert statuses == [201] + [409] * 7, [r.text for r in responses]
        async with harness.ctx.db.transaction(readonly=True) as session:
            rows = (
                await session.scalars(select(Alarm).where(Alarm.account_id == account["id"]))
            ).all()
        accepted = [row for row in rows if row.outcome == "accepted"]
        assert len(rows) == 24 and len(accepted) == 3
        assert all(row.latched for row in accepted)
        assert {row.duplicate_of for row in rows if row.reason == "duplicate"} == {
            row.id for row in accepted
        }


@pytest.mark.usefixtures("backend")
async def test_cancel_stands_the_guards_down_and_records_the_reason(
    harness: Harness, area: tuple[float, float]
) -> None:
    await harness.make_station(area)
    account = await make_account(harness, area)
    key = await alarm_key(harness)
    guard = await guard_at(harness, offset(area, east_m=60))

    first = (await send(harness, key, alarm_body(account["account"], harness))).json()
    offer = await guard.expect("offer")
    assert offer["incident"]["id"] == first["incident_id"]
    await guard.send({"type": "offer.accept", "offer_id": offer["offer_id"]})
    await guard.expect("assignment")

    cancelled = await harness.client.post(
        f"/api/v1/alarms/{first['id']}/cancel",
        json={"reason": "keyholder_cancel", "note": "owner opened the shop early"},
        headers=key,
    )
    assert cancelled.status_code == 200, cancelled.text
    body = cancelled.json()
    assert body["cancel_reason"] == "keyholder_cancel" and body["cancelled_at"]
    assert body["cancelled_by"].startswith("api_key:")
    update = await guard.expect("incident.update")
    assert update["incident"]["id"] == first["incident_id"]
    assert update["incident"]["status"] == "cancelled"
    assert update["note"] == "owner opened the shop early"
    incident = (await harness.get(f"/api/v1/incidents/{first['incident_id']}")).json()
    assert incident["status"] == "cancelled"
    assert all(a["status"] == "cleared" for a in incident["assignments"])
    timeline = (await harness.get(f"/api/v1/incidents/{first['incident_id']}/events")).json()
    [ended] = [e for e in timeline["items"] if e["type"] == "incident.cancelled"]
    assert ended["data"]["reason"] == "keyholder_cancel"
    assert ended["data"]["alarm_id"] == first["id"]
    assert [e for e in timeline["items"] if e["type"] == "alarm.cancelled"]

    # A repeat answers the same; the site may alarm again at once (the latch is released).
    again = await harness.client.post(f"/api/v1/alarms/{first['id']}/cancel", headers=key)
    assert again.status_code == 200 and again.json()["cancelled_at"] == body["cancelled_at"]
    second = (await send(harness, key, alarm_body(account["account"], harness))).json()
    assert second["outcome"] == "accepted", second

    # A guard still holding only the offer has it withdrawn; an operator may cancel too.
    offer = await guard.expect("offer")
    assert offer["incident"]["id"] == second["incident_id"]
    by_operator = await harness.post(
        f"/api/v1/alarms/{second['id']}/cancel", {"reason": "false_alarm"}, role="operator"
    )
    assert by_operator.status_code == 200, by_operator.text
    withdrawn = await guard.expect("offer.withdrawn", offer_id=offer["offer_id"])
    assert withdrawn["reason"] == "cancelled"
    await guard.close()


@pytest.mark.usefixtures("backend")
async def test_cancel_refuses_rejected_alarms_and_ended_incidents(
    harness: Harness, area: tuple[float, float]
) -> None:
    await harness.make_station(area)
    account = await make_account(harness, area)
    key = await alarm_key(harness)
    rejected = await send(harness, key, alarm_body("AC-ghost-" + uuid.uuid4().hex, harness))
    rejected_id = rejected.json()["error"]["details"]["alarm_id"]
    response = await harness.client.post(f"/api/v1/alarms/{rejected_id}/cancel", headers=key)
    assert_error(response, 409, "invalid_transition")

    accepted = (await send(harness, key, alarm_body(account["account"], harness))).json()
    resolved = await harness.post(
        f"/api/v1/incidents/{accepted['incident_id']}/resolve", {}, role="operator"
    )
    assert resolved.status_code == 200
    late = await harness.client.post(f"/api/v1/alarms/{accepted['id']}/cancel", headers=key)
    error = assert_error(late, 409, "invalid_transition")
    assert "'resolved'" in error["message"]
    bad = await harness.client.post(
        f"/api/v1/alarms/{accepted['id']}/cancel", json={"reason": "bored"}, headers=key
    )
    assert_error(bad, 422, "validation_error")
    assert "reason" in bad.text


@pytest.mark.usefixtures("backend")
async def test_keys_and_stations_see_only_their_own_alarms(
    harness: Harness, area: tuple[float, float]
) -> None:
    station = await harness.make_station(area)
    elsewhere = offset(area, north_m=30_000)
    other_station = await harness.make_station(elsewhere)
    here = await make_account(harness, area)
    there = await make_account(harness, elsewhere)

    scoped = await alarm_key(harness, station_id=station["id"])
    out_of_area = await send(harness, scoped, alarm_body(there["account"], harness))
    assert_error(out_of_area, 404, "unknown_account")
    mine = await send(harness, scoped, alarm_body(here["account"], harness))
    assert mine.status_code == 201, mine.text

    # Another receiver's key sees neither the alarm nor may it cancel it.
    other_key = await alarm_key(harness)
    assert_error(
        await harness.client.get(f"/api/v1/alarms/{mine.json()['id']}", headers=other_key),
        404,
        "not_found",
    )
    assert_error(
        await harness.client.post(f"/api/v1/alarms/{mine.json()['id']}/cancel", headers=other_key),
        404,
        "not_found",
    )
    own_list = await harness.client.get("/api/v1/alarms", headers=scoped)
    assert {a["id"] for a in own_list.json()["items"]} == {
        mine.json()["id"],
        out_of_area.json()["error"]["details"]["alarm_id"],
    }

    # A key without alarms:write may not send alarms at all.
    reader = {"Authorization": f"Bearer {await harness.api_key(['incidents:read'])}"}
    assert_error(
        await send(harness, reader, alarm_body(here["account"], harness)), 403, "forbidden"
    )

    # A station-scoped supervisor lists its station's accounts only.
    supervisor = await harness.headers("supervisor", station_id=other_station["id"])
    listed = await harness.client.get("/api/v1/alarm-accounts", headers=supervisor)
    assert [a["id"] for a in listed.json()["items"]] == [there["id"]]


@pytest.mark.usefixtures("backend")
async def test_alarm_company_hears_accepted_and_rejected_over_webhooks(
    harness: Harness, area: tuple[float, float], receiver: Receiver
) -> None:
    station = await harness.make_station(area)
    account = await make_account(harness, area)
    key = await alarm_key(harness, station_id=station["id"])
    subscribed = await harness.client.post(
        "/api/v1/webhooks",
        json={
            "url": receiver.url,
            "event_types": ["alarm.accepted", "alarm.rejected", "incident.cancelled"],
        },
        headers=key,
    )
    assert subscribed.status_code == 201, subscribed.text
    secret = subscribed.json()["secret"]

    accepted = (await send(harness, key, alarm_body(account["account"], harness))).json()
    duplicate = await send(harness, key, alarm_body(account["account"], harness))
    assert duplicate.status_code == 409
    await harness.client.post(f"/api/v1/alarms/{accepted['id']}/cancel", headers=key)

    received = await receiver.wait_for(3)
    assert all(verify_signature(secret, r) for r in received)
    by_type = {r.json["type"]: r.json["data"] for r in received}
    assert by_type["alarm.accepted"]["data"]["alarm_id"] == accepted["id"]
    assert by_type["alarm.accepted"]["incident_id"] == accepted["incident_id"]
    assert by_type["alarm.rejected"]["data"]["reason"] == "duplicate"
    assert by_type["alarm.rejected"]["data"]["duplicate_of"] == accepted["id"]
    assert by_type["incident.cancelled"]["incident_id"] == accepted["incident_id"]
