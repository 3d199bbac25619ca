"""Recognition points (issue 12 §3) earned through the real flow — phones accept and
arrive, the police arrive and take over, supervisors commend and complain — and the
ledger, the leaderboard and the feedback endpoints read back what was earned."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from app.models import Event
from app.supervision import expiry
from tests.harness import Harness
from tests.phones import WAIT_S, Phone, guard_at, offset
from tests.test_errors import assert_error
from tests.test_intel import report

pytestmark = pytest.mark.usefixtures("backend")


async def ledger(harness: Harness, phone: Phone) -> dict[str, Any]:
    found = await harness.get(f"/api/v1/guards/{phone.id}/points")
    assert found.status_code == 200, found.text
    return dict(found.json())


def rules(page: dict[str, Any]) -> list[tuple[str, int]]:
    return sorted((item["rule"], item["points"]) for item in page["items"])


async def accept(phone: Phone) -> dict[str, Any]:
    offer = await phone.expect("offer")
    await phone.send({"type": "offer.accept", "offer_id": offer["offer_id"]})
    return await phone.expect("assignment")


async def report_status(phone: Phone, assignment: dict[str, Any], status: str) -> None:
    """Send the status and wait (bounded) until the incident shows it."""
    await phone.send(
        {
            "type": "assignment.status",
            "assignment_id": assignment["assignment_id"],
            "status": status,
        }
    )
    path = f"/api/v1/incidents/{assignment['incident']['id']}"
    async with asyncio.timeout(WAIT_S):
        while True:
            detail = (await phone.harness.get(path)).json()
            mine = [a for a in detail["assignments"] if a["id"] == assignment["assignment_id"]]
            if mine and mine[0]["status"] == status:
                return
            await asyncio.sleep(0.02)


async def arrive(phone: Phone, assignment: dict[str, Any]) -> None:
    await report_status(phone, assignment, "on_scene")


async def test_first_on_scene_and_a_clean_handover_earn_points_then_police_feedback(
    harness: Harness, area: tuple[float, float]
) -> None:
    station = await harness.make_station(area)
    company = await harness.make_company()
    first = await guard_at(harness, offset(area, north_m=80), company["id"], name="Li Na")
    second = await guard_at(harness, offset(area, east_m=90), company["id"], name="Wang Fang")
    incident = await harness.make_incident(area, category="robbery", priority=1)
    assert incident["required_guards"] == 2

    mine, theirs = await accept(first), await accept(second)
    await arrive(first, mine)
    await arrive(second, theirs)
    for step in ("arrived", "handover"):
        done = await harness.post(f"/api/v1/incidents/{incident['id']}/police/{step}", {})
        assert done.status_code == 200, done.text

    assert rules(await ledger(harness, first)) == [("clean_handover", 5), ("first_on_scene_p1", 10)]
    assert rules(await ledger(harness, second)) == [("clean_handover", 5)]
    entry = (await ledger(harness, first))["items"][0]
    assert entry["incident_id"] == incident["id"] and entry["station_id"] == station["id"]
    assert entry["company_id"] == company["id"] and entry["reason"]

    praised = await harness.post(
        f"/api/v1/incidents/{incident['id']}/commendations",
        {"guard_id": first.id, "text": "held the suspect calmly until we arrived"},
        role="supervisor",
    )
    assert praised.status_code == 201, praised.text
    assert praised.json() == {
        **praised.json(),
        "incident_id": incident["id"],
        "guard_id": first.id,
        "company_id": company["id"],
        "kind": "commendation",
        "text": "held the suspect calmly until we arrived",
    }
    scolded = await harness.post(
        f"/api/v1/incidents/{incident['id']}/complaints",
        {"guard_id": second.id, "text": "left the door open"},
        role="supervisor",
    )
    assert scolded.status_code == 201, scolded.text

    record = await ledger(harness, first)
    assert record["total"] == 35 and record["period_total"] == 35
    assert (await ledger(harness, second))["total"] == -15
    said = await harness.get(f"/api/v1/incidents/{incident['id']}/feedback")
    assert [f["kind"] for f in said.json()["items"]] == ["commendation", "complaint"]

    board = await harness.get("/api/v1/reports/leaderboard", params={"station_id": station["id"]})
    assert board.status_code == 200, board.text
    assert [(e["rank"], e["name"], e["points"], e["awards"]) for e in board.json()["items"]] == [
        (1, "Li Na", 35, 3),
        (2, "Wang Fang", -15, 2),
    ]
    by_company = await harness.get(
        "/api/v1/reports/leaderboard", params={"company_id": company["id"], "limit": 1}
    )
    assert [e["guard_id"] for e in by_company.json()["items"]] == [first.id]

    # The ledger is idempotent per guard, rule and cause: a second handover can't happen,
    # and a second commendation is a new cause (a new line), never a rewrite of the first.
    page = await harness.get(f"/api/v1/guards/{first.id}/points", params={"limit": 1})
    assert len(page.json()["items"]) == 1 and page.json()["next_cursor"]
    rest = await harness.get(
        f"/api/v1/guards/{first.id}/points", params={"cursor": page.json()["next_cursor"]}
    )
    assert len(rest.json()["items"]) == 2


async def test_a_guard_who_accepts_and_stands_down_before_arriving_loses_points(
    harness: Harness, area: tuple[float, float]
) -> None:
    phone = await guard_at(harness, offset(area, north_m=50))
    await harness.make_incident(area, category="theft", priority=3)
    assignment = await accept(phone)
    await report_status(phone, assignment, "cleared")
    assert rules(await ledger(harness, phone)) == [("no_show", -10)]


async def test_an_operator_standing_a_guard_down_costs_the_guard_nothing(
    harness: Harness, area: tuple[float, float]
) -> None:
    phone = await guard_at(harness, offset(area, north_m=50))
    incident = await harness.make_incident(area, category="theft", priority=3)
    await accept(phone)
    cancelled = await harness.post(
        f"/api/v1/incidents/{incident['id']}/cancel", {"note": "caller rang back"}, role="operator"
    )
    assert cancelled.status_code == 200, cancelled.text
    await phone.expect("incident.update")
    assert rules(await ledger(harness, phone)) == []


async def test_drills_earn_no_points(harness: Harness, area: tuple[float, float]) -> None:
    phone = await guard_at(harness, offset(area, north_m=50))
    await harness.make_incident(area, category="theft", priority=2, exercise=True)
    await arrive(phone, await accept(phone))
    assert rules(await ledger(harness, phone)) == []


async def test_a_drill_commendation_counts_nowhere(
    harness: Harness, area: tuple[float, float]
) -> None:
    company = await harness.make_company()
    phone = await guard_at(harness, offset(area, north_m=50), company["id"])
    drill = await harness.make_incident(area, category="theft", priority=3, exercise=True)
    await accept(phone)
    praised = await harness.post(
        f"/api/v1/incidents/{drill['id']}/commendations",
        {"guard_id": phone.id, "text": "textbook drill"},
        role="supervisor",
    )
    assert praised.status_code == 201, praised.text
    companies = await harness.get("/api/v1/reports/companies")
    [row] = [c for c in companies.json()["items"] if c["id"] == company["id"]]
    assert (row["commendations"], row["points"]) == (0, 0)
    assert rules(await ledger(harness, phone)) == []


async def test_a_report_with_nothing_to_rank_has_null_percentiles(
    harness: Harness, area: tuple[float, float]
) -> None:
    """No acceptance and nobody on scene: every percentile is null, never an error."""
    station = await harness.make_station(area)
    phone = await guard_at(harness, offset(area, north_m=50))
    incident = await harness.make_incident(area, category="theft", priority=3)
    offer = await phone.expect("offer")
    await phone.send({"type": "offer.decline", "offer_id": offer["offer_id"]})
    async with asyncio.timeout(WAIT_S):
        while True:
            detail = (await harness.get(f"/api/v1/incidents/{incident['id']}")).json()
            if [o["outcome"] for o in detail["offers"]] == ["declined"]:
                break
            await asyncio.sleep(0.02)
    for group_by in ("station", "guard", "day"):
        found = await harness.get(
            "/api/v1/reports/response",
            params={"group_by": group_by, "station_id": station["id"]},
        )
        assert found.status_code == 200, found.text
        total = found.json()["total"]
        assert (total["incidents"], total["declines"], total["acceptance_rate"]) == (1, 1, 0.0)
        assert total["accept_s_p50"] is None and total["on_scene_s_p90"] is None
        assert total["minutes_gained_p50"] is None and total["minutes_gained_total"] == 0


async def test_a_station_scoped_key_sees_points_earned_at_its_station_only(
    harness: Harness, area: tuple[float, float]
) -> None:
    await harness.make_station(area)
    elsewhere = await harness.make_station((area[0] + 0.5, area[1]))
    phone = await guard_at(harness, offset(area, north_m=50))
    await harness.make_incident(area, category="theft", priority=3)
    await arrive(phone, await accept(phone))
    assert (await ledger(harness, phone))["total"] == 4
    key = await harness.api_key(["reports:read", "registry:read"], station_id=elsewhere["id"])
    theirs = await harness.client.get(
        f"/api/v1/guards/{phone.id}/points", headers={"Authorization": f"Bearer {key}"}
    )
    assert theirs.status_code == 200, theirs.text
    assert (theirs.json()["total"], theirs.json()["items"]) == (0, [])


async def test_names_a_spreadsheet_would_run_are_quoted_in_csv(
    harness: Harness, area: tuple[float, float]
) -> None:
    company = await harness.make_company(name='=HYPERLINK("http://evil.example","x")')
    phone = await guard_at(harness, offset(area, north_m=50), company["id"])
    await harness.make_incident(area, category="theft", priority=3)
    await accept(phone)
    csv = await harness.get(
        "/api/v1/reports/response",
        params={"group_by": "company", "company_id": company["id"], "format": "csv"},
    )
    assert csv.status_code == 200, csv.text
    assert "\n" + company["id"] + ",\"'=HYPERLINK(" in csv.text.replace("\r\n", "\n")


async def test_useful_intel_earns_points_once_per_report(
    harness: Harness, area: tuple[float, float]
) -> None:
    await harness.make_station(area)
    phone = await guard_at(harness, area)
    intel_id = (await report(harness, phone, area))["intel_id"]
    for state in ("useful", "acted_on"):
        triaged = await harness.post(
            f"/api/v1/intel/{intel_id}/triage", {"state": state, "note": "thanks"}, role="operator"
        )
        assert triaged.status_code == 200, triaged.text
    assert rules(await ledger(harness, phone)) == [("intel_useful", 5)]


async def test_feedback_bad_input_is_refused_and_writes_nothing(
    harness: Harness, area: tuple[float, float]
) -> None:
    phone = await guard_at(harness, offset(area, north_m=50))
    bystander = await harness.make_guard()
    incident = await harness.make_incident(area, category="theft", priority=3)
    await accept(phone)
    path = f"/api/v1/incidents/{incident['id']}/commendations"
    body = {"guard_id": phone.id, "text": "well done"}

    assert_error(await harness.post(path, body, role="operator"), 403, "forbidden")
    assert_error(
        await harness.post("/api/v1/incidents/inc_missing/commendations", body, role="supervisor"),
        404,
        "not_found",
    )
    unknown = await harness.post(path, {**body, "guard_id": "grd_missing"}, role="supervisor")
    assert_error(unknown, 422, "validation_error")
    assert "guard_id" in unknown.json()["error"]["message"]
    assert_error(
        await harness.post(path, {**body, "guard_id": bystander["id"]}, role="supervisor"),
        409,
        "guard_not_on_incident",
    )
    for bad in ({**body, "text": "  "}, {**body, "stars": 5}, {"guard_id": phone.id}):
        assert_error(await harness.post(path, bad, role="supervisor"), 422, "validation_error")

    said = await harness.get(f"/api/v1/incidents/{incident['id']}/feedback")
    assert said.json()["items"] == []
    assert rules(await ledger(harness, phone)) == []


async def test_company_managers_see_their_own_guards_points_only(
    harness: Harness, area: tuple[float, float]
) -> None:
    phone = await guard_at(harness, area)
    other = await harness.make_company()
    manager = await harness.headers("company_manager", company_id=other["id"])
    hidden = await harness.client.get(f"/api/v1/guards/{phone.id}/points", headers=manager)
    assert_error(hidden, 404, "not_found")
    board = await harness.client.get(
        "/api/v1/reports/leaderboard",
        params={"company_id": phone.guard["company_id"]},
        headers=manager,
    )
    assert board.status_code == 200, board.text
    assert board.json()["items"] == []  # their own company's board, whatever they ask


async def test_a_guard_who_leaves_gets_a_left_on_date_cleared_on_return(
    harness: Harness,
) -> None:
    guard = await harness.make_guard()
    path = f"/api/v1/guards/{guard['id']}"
    today = harness.now().astimezone(ZoneInfo("Asia/Shanghai")).date().isoformat()
    left = await harness.patch(path, {"status": "left"})
    assert left.status_code == 200 and left.json()["left_on"] == today
    dated = await harness.patch(path, {"status": "left", "left_on": "2026-01-31"})
    assert dated.json()["left_on"] == "2026-01-31"
    back = await harness.patch(path, {"status": "active"})
    assert back.json()["left_on"] is None
    refused = await harness.patch(path, {"left_on": "2026-01-31"})
    assert_error(refused, 422, "validation_error")
    assert "left_on" in refused.json()["error"]["message"]
    assert (await harness.get(path)).json()["left_on"] is None


async def test_expiring_licences_and_certificates_are_warned_of_once_per_threshold(
    harness: Harness,
) -> None:
    zone = ZoneInfo("Asia/Shanghai")
    today = harness.now().astimezone(zone).date()
    company = await harness.make_company(
        licence_expires_on=(today + dt.timedelta(days=5)).isoformat()
    )
    guard = await harness.make_guard(
        company["id"], certificate_expires_on=(today + dt.timedelta(days=20)).isoformat()
    )

    async def warnings() -> list[dict[str, Any]]:
        async with harness.ctx.db.transaction(readonly=True) as session:
            rows = await session.scalars(
                select(Event).where(
                    Event.type.in_(["company.licence_expiring", "guard.certificate_expiring"])
                )
            )
            return [
                {"type": e.type, **e.data}
                for e in rows
                if e.data.get("company_id") == company["id"]
            ]

    for _ in range(2):  # the second pass finds both already warned of
        async with harness.ctx.db.transaction() as session:
            await expiry.check(session, harness.ctx.events, harness.now(), zone)
    found = sorted(await warnings(), key=lambda w: w["type"])
    assert [(w["type"], w["days_left"], w["threshold_days"]) for w in found] == [
        ("company.licence_expiring", 5, 7),
        ("guard.certificate_expiring", 20, 30),
    ]
    assert found[1]["guard_id"] == guard["id"]

    companies = await harness.get("/api/v1/reports/companies")
    [row] = [c for c in companies.json()["items"] if c["id"] == company["id"]]
    assert row["licence_days_left"] == 5 and row["licence_state"] == "expiring"
    assert row["certificates_expiring"] == 1 and row["guards"]["active"] == 1
