"""The simulator: its guards' decisions on their own, then whole runs against the server."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import random
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import select

from app.alarms.schemas import AlarmCreate
from app.geo.distance import haversine_m
from app.intel.schemas import TriageRequest
from app.models import ApiKey, GuardToken
from app.realtime import outbox
from app.realtime.frames import Report
from app.simulate import behaviour as decide
from app.simulate.alarms import SIGNALS, account_number, cancel_after, plan_alarm
from app.simulate.clock import PhoneClock, parse_time
from app.simulate.config import Behaviour, Bounds, SimulationConfig
from app.simulate.crew import demo_posts, pick_guards
from app.simulate.incidents import MIX, plan_incident
from app.simulate.movement import (
    FOOT_MPS,
    PATROL_RADIUS_M,
    Mode,
    choose_mode,
    patrol_waypoint,
    step_towards,
)
from app.simulate.police import pick_unit, police_delay, triage_delay, triage_verdict
from app.simulate.runner import simulate
from app.simulate.stats import Stats
from tests.harness import Harness

WAIT_S = 15.0
NOW = dt.datetime(2026, 11, 21, 10, 0, tzinfo=dt.UTC)
CITY = Bounds(39.06, 117.09, 39.20, 117.31)
# Fast, decisive guards for tests: every offer accepted at once, nobody drops the signal.
BRISK = Behaviour(
    accept_rate=1.0,
    decline_rate=0.0,
    reply_delay_s=(0.05, 0.2),
    clear_after_s=(600.0, 600.0),
    dropouts_per_hour=0.0,
    ping_interval_s=0.5,
    tick_s=0.05,
    police_delays_s=((0.1, 0.2), (0.1, 0.2), (0.1, 0.2)),
    poll_s=0.2,
    intel_per_hour=0.0,
)


# Decisions, without a server ------------------------------------------------------------


def test_most_offers_are_accepted_some_declined_some_left_unanswered() -> None:
    rng = random.Random(1)
    expires = NOW + dt.timedelta(seconds=20)
    replies = [
        decide.reply_to_offer(Behaviour(), rng, busy=False, now=NOW, expires_at=expires)
        for _ in range(2000)
    ]
    share = {
        a: sum(r.answer == a for r in replies) / len(replies)
        for a in ("accept", "decline", "silent")
    }
    assert 0.80 < share["accept"] < 0.90
    assert 0.06 < share["decline"] < 0.14
    assert 0.02 < share["silent"] < 0.08
    assert all(r.reason for r in replies if r.answer == "decline")
    assert all(r.delay_s <= 19.0 for r in replies)


def test_a_reply_is_never_planned_after_the_offer_expires() -> None:
    rng = random.Random(2)
    soon = NOW + dt.timedelta(seconds=3)
    for _ in range(200):
        reply = decide.reply_to_offer(Behaviour(), rng, busy=False, now=NOW, expires_at=soon)
        assert reply.delay_s <= 2.0
    expired = decide.reply_to_offer(Behaviour(), rng, busy=False, now=NOW, expires_at=NOW)
    assert expired.answer == "silent"


def test_a_guard_on_an_assignment_declines_at_once() -> None:
    expires = NOW + dt.timedelta(seconds=20)
    reply = decide.reply_to_offer(
        Behaviour(), random.Random(3), busy=True, now=NOW, expires_at=expires
    )
    assert (reply.answer, reply.delay_s) == ("decline", 0.0)


def test_on_scene_within_thirty_metres_and_serious_incidents_take_longer() -> None:
    assert decide.arrived(29.0, Behaviour()) and not decide.arrived(31.0, Behaviour())
    flat = Behaviour(clear_after_s=(100.0, 100.0))
    assert decide.clear_after(flat, random.Random(4), 1) > decide.clear_after(
        flat, random.Random(4), 3
    )


def test_patrol_vehicles_drive_others_walk_or_ride() -> None:
    rng = random.Random(5)
    assert choose_mode(["patrol_vehicle"], rng, 0.25).name == "vehicle"
    assert 8.0 <= choose_mode(["patrol_vehicle"], rng, 0.25).speed_mps <= 10.0
    assert choose_mode(["first_aid"], rng, 0.0) == Mode("foot", FOOT_MPS)
    assert choose_mode(["first_aid"], rng, 1.0).name == "bike"


def test_a_step_moves_at_most_its_length_and_stops_on_the_target() -> None:
    here, target = (39.1200, 117.2000), (39.1300, 117.2100)
    moved = step_towards(here, target, 14.0)
    assert haversine_m(*here, *moved) == pytest.approx(14.0, rel=0.01)
    assert haversine_m(*moved, *target) < haversine_m(*here, *target)
    assert step_towards(here, target, 10_000.0) == target


def test_patrol_waypoints_stay_on_the_beat_and_in_the_city() -> None:
    rng = random.Random(6)
    post = (39.0610, 117.0910)  # a corner post: some waypoints would fall outside
    for mode in (Mode("foot", 1.4), Mode("vehicle", 9.0)):
        for _ in range(200):
            lat, lon = patrol_waypoint(post, mode, CITY, rng)
            assert CITY.south <= lat <= CITY.north and CITY.west <= lon <= CITY.east
            assert haversine_m(*post, lat, lon) <= PATROL_RADIUS_M[mode.name] + 1


def test_the_phone_clock_follows_the_server_and_never_goes_back() -> None:
    clock = PhoneClock()
    server = dt.datetime.now(dt.UTC) + dt.timedelta(days=3)  # a test server's ManualClock
    clock.sync(server.isoformat())
    assert abs((clock.now() - server).total_seconds()) < 5
    stamps = [parse_time(clock.stamp()) for _ in range(50)]
    assert all(b > a for a, b in zip(stamps, stamps[1:], strict=False))
    clock.sync((server - dt.timedelta(hours=1)).isoformat())  # a backwards correction
    assert parse_time(clock.stamp()) > stamps[-1]


def test_incidents_follow_the_mix_and_the_seed() -> None:
    posts = [(39.1238, 117.2003)]
    plans = [
        plan_incident(random.Random(7), posts, CITY, number=n, run_tag="t", cad_share=0.3)
        for n in range(3)
    ]
    again = plan_incident(random.Random(7), posts, CITY, number=0, run_tag="t", cad_share=0.3)
    assert plans[0] == again
    rng = random.Random(8)
    many = [
        plan_incident(rng, posts, CITY, number=n, run_tag="t", cad_share=0.3) for n in range(500)
    ]
    for plan in many:
        category, priority = plan.body["category"], plan.body["priority"]
        assert priority in MIX[category][1]
        assert CITY.south <= plan.body["location"]["lat"] <= CITY.north
        assert ("external_ref" in plan.body) == plan.via_cad
    assert 0.2 < sum(p.via_cad for p in many) / len(many) < 0.4
    assert sum(p.body["category"] == "theft" for p in many) > sum(
        p.body["category"] == "fire" for p in many
    )
    assert not any("exercise" in p.body for p in many)  # no drills unless asked for


def test_a_share_of_incidents_are_drills() -> None:
    rng = random.Random(15)
    posts = [(39.1238, 117.2003)]
    plans = [
        plan_incident(rng, posts, CITY, number=n, run_tag="t", cad_share=0.3, drill_share=0.1)
        for n in range(1000)
    ]
    drills = [p for p in plans if p.body.get("exercise") is True]
    assert 0.07 < len(drills) / len(plans) < 0.13
    assert any(p.via_cad for p in drills) and any(not p.via_cad for p in drills)


def test_police_act_in_order_with_a_unit_not_already_sent() -> None:
    rng = random.Random(9)
    assert police_delay("sent", Behaviour(), rng) is not None
    assert police_delay("handed_over", Behaviour(), rng) is None
    escalation = {"recommended_units": [{"unit_id": "u1"}, {"unit_id": "u2"}]}
    assert pick_unit(escalation, {"u1"}) == "u2"
    assert pick_unit(escalation, {"u1", "u2"}) is None


def test_guards_report_intel_now_and_then_in_frames_the_server_accepts() -> None:
    rng = random.Random(12)
    hourly = Behaviour(intel_per_hour=2.0)
    hours = sum(decide.reports_intel(hourly, rng, 60.0) for _ in range(60 * 500)) / 500
    assert 1.6 < hours < 2.4  # about twice an hour per guard
    assert not decide.reports_intel(Behaviour(intel_per_hour=0.0), rng, 3600.0)
    subjects = set()
    for _ in range(200):
        frame = decide.intel_report(rng, (39.1238, 117.2003))
        report = Report.model_validate(frame)
        assert report.kind == "intel" and report.problem() is None
        assert (frame["lat"], frame["lon"]) == (39.1238, 117.2003)
        subjects.add(frame["subject"])
    assert subjects == set(decide.INTEL)


def test_the_desk_triages_after_a_delay_with_every_verdict_and_a_note() -> None:
    rng = random.Random(13)
    slow = Behaviour(triage_after_s=(20.0, 90.0))
    assert all(20.0 <= triage_delay(slow, rng) <= 90.0 for _ in range(100))
    verdicts = [triage_verdict(rng) for _ in range(600)]
    for state, note in verdicts:
        TriageRequest(state=state, note=note)  # a body the server takes
    counts = Counter(state for state, _ in verdicts)
    assert set(counts) == {"useful", "not_useful", "acted_on"}
    assert counts["useful"] > counts["acted_on"]


def test_alarms_are_bodies_the_server_takes_and_some_are_cancelled() -> None:
    rng = random.Random(14)
    account = account_number("com_" + "x" * 80)
    assert len(account) == 64 and account.startswith("SIM-com_")
    bodies = [plan_alarm(rng, "SIM-1", NOW) for _ in range(300)]
    for body in bodies:
        alarm = AlarmCreate.model_validate(body)
        assert alarm.occurred_at == NOW and alarm.event_code in SIGNALS
    codes = Counter(b["event_code"] for b in bodies)
    assert codes["BA"] > codes["MA"]  # intrusion is the common signal
    assert any(b["verification"] != "none" for b in bodies)
    cancelling = Behaviour(alarm_cancel_rate=0.2, alarm_cancel_after_s=(20.0, 90.0))
    delays = [cancel_after(cancelling, rng) for _ in range(1000)]
    cancelled = [d for d in delays if d is not None]
    assert 0.15 < len(cancelled) / len(delays) < 0.25
    assert all(20.0 <= d <= 90.0 for d in cancelled)
    assert cancel_after(Behaviour(alarm_cancel_rate=0.0), rng) is None


def test_the_summary_counts_intel_and_alarms() -> None:
    stats = Stats(intel_reported=5, intel_triaged=3, alarms_accepted=4, alarms_cancelled=1)
    stats.alarms_rejected["duplicate"] += 2
    line = stats.summary(12.0)
    assert "intel 5 reported, 3 triaged" in line
    assert "alarms 4 accepted (1 cancelled), 2 rejected" in line
    assert "(drills 0)" in line


def test_demo_guards_come_first_with_their_posts_and_the_pick_is_reproducible() -> None:
    badge, post = next(iter(demo_posts().items()))
    guards = [
        {"id": f"g{i}", "name": "x", "badge_no": f"OTHER-{i}", "skills": []} for i in range(5)
    ] + [{"id": "demo", "name": "y", "badge_no": badge, "skills": ["first_aid"]}]
    first = pick_guards(guards, 2, CITY, random.Random(10))
    assert first[0].guard_id == "demo" and first[0].post == post
    assert first == pick_guards(guards, 2, CITY, random.Random(10))


def test_a_server_that_is_not_running_is_one_line_and_exit_code_1() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    done = subprocess.run(
        [sys.executable, "-m", "app", "simulate", "--url", f"http://127.0.0.1:{port}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().count("\n") == 0
    assert f"no dispatch server ready at http://127.0.0.1:{port}" in done.stderr


# Whole runs against the server ----------------------------------------------------------


async def until(check: Callable[[], Awaitable[Any]], what: str, timeout: float = WAIT_S) -> Any:
    """Poll `check` until it returns something truthy; fail naming `what` after `timeout`."""
    try:
        async with asyncio.timeout(timeout):
            while not (result := await check()):
                await asyncio.sleep(0.05)
            return result
    except TimeoutError:
        pytest.fail(f"timed out waiting for {what}")


async def crew(harness: Harness, area: tuple[float, float], count: int) -> tuple[str, list[str]]:
    """A company with `count` first-aid guards; (company id, guard ids)."""
    company = await harness.make_company()
    guards = [await harness.make_guard(company["id"]) for _ in range(count)]
    return company["id"], [g["id"] for g in guards]


def config_for(
    harness: Harness, admin: str, company_id: str, area: tuple[float, float], **kw: Any
) -> SimulationConfig:
    lat, lon = area
    values: dict[str, Any] = {
        "url": harness.base_url,
        "username": admin,
        "password": "correct-horse-battery",
        "guards": 3,
        "incidents_per_minute": 0.0,
        "cad_share": 0.0,
        "police": False,
        "alarms_per_minute": 0.0,
        "drill_share": 0.0,
        "seed": 11,
        "summary_every_s": 0.5,
        "company_id": company_id,
        # ~10 m across: every guard is within on-scene distance of the middle
        "bounds": Bounds(lat - 0.00005, lon - 0.00005, lat + 0.00005, lon + 0.00005),
        "behaviour": BRISK,
    }
    values.update(kw)
    return SimulationConfig(**values)


async def dispatchable(harness: Harness, area: tuple[float, float]) -> list[dict[str, Any]]:
    response = await harness.get(
        "/api/v1/guards/nearby",
        params={"lat": area[0], "lon": area[1], "radius_m": 200, "limit": 50},
    )
    return list(response.json()["items"])


async def incident_in(harness: Harness, incident_id: str, *statuses: str) -> dict[str, Any] | None:
    detail = dict((await harness.get(f"/api/v1/incidents/{incident_id}")).json())
    return detail if detail["status"] in statuses else None


@pytest.mark.usefixtures("backend")
async def test_simulated_guards_take_an_incident_on_scene_then_sign_off_cleanly(
    harness: Harness, area: tuple[float, float]
) -> None:
    company_id, guard_ids = await crew(harness, area, 3)
    admin = await harness.user("admin")
    stop = asyncio.Event()
    lines: list[str] = []
    run = asyncio.create_task(
        simulate(config_for(harness, admin, company_id, area), stop, lines.append)
    )
    try:
        await until(lambda: _count(dispatchable(harness, area), 3), "3 guards on duty, fresh")
        incident = await harness.make_incident(
            area, category="medical", priority=2, description="man collapsed at the east gate"
        )
        seen = await until(
            lambda: incident_in(harness, incident["id"], "on_scene"), "the incident on scene"
        )
        assert len(seen["assignments"]) == 1
        guard_id = seen["assignments"][0]["guard_id"]
        assert guard_id in guard_ids
        events = (await harness.get(f"/api/v1/incidents/{incident['id']}/events")).json()
        types = [e["type"] for e in events["items"]]
        assert types.index("incident.assigned") < types.index("assignment.on_scene")
        assert "offer.accepted" in types
        await until(lambda: _acked_all(harness, guard_id), "every frame acknowledged")
    finally:
        stop.set()
        async with asyncio.timeout(WAIT_S):
            stats = await run
    assert stats.accepted >= 1 and stats.on_scene == 1 and stats.pings > 0
    assert stats.errors == {}, stats.errors
    assert stats.connected == 0 and stats.on_duty == 0
    assert lines[0].startswith("simulating 3 guards") and "0/3 connected" in lines[-1]
    for gid in guard_ids:  # signed off: off duty, not dispatchable
        entry = harness.ctx.live.get(gid)
        assert entry is not None and not entry.on_duty
    await until(lambda: _all_closed(harness, guard_ids), "the guards' sockets closed")
    assert await dispatchable(harness, area) == []
    # End of shift cleared the open assignment, so the incident is resolved, not stuck.
    assert await incident_in(harness, incident["id"], "resolved")


@pytest.mark.usefixtures("backend")
async def test_a_guard_whose_connection_drops_resumes_and_still_takes_the_next_incident(
    harness: Harness, area: tuple[float, float]
) -> None:
    company_id, (guard_id,) = await crew(harness, area, 1)
    admin = await harness.user("admin")
    stop = asyncio.Event()
    config = config_for(harness, admin, company_id, area, guards=1)
    run = asyncio.create_task(simulate(config, stop, lambda line: None))
    try:
        await until(lambda: _count(dispatchable(harness, area), 1), "the guard on duty")
        link = harness.ctx.hub.guard_link(guard_id)
        assert link is not None
        link.close(4008, "slow consumer: reconnect and resume")  # as the server would
        await until(lambda: _reconnected(harness, guard_id, link), "the phone to connect again", 20)
        await until(lambda: _count(dispatchable(harness, area), 1), "the guard back on duty")
        incident = await harness.make_incident(area, category="theft", priority=3)
        await until(lambda: incident_in(harness, incident["id"], "on_scene"), "on scene")
        await until(lambda: _acked_all(harness, guard_id), "every frame acknowledged")
    finally:
        stop.set()
        async with asyncio.timeout(WAIT_S):
            stats = await run
    assert stats.errors == {"ws_closed_4008": 1}, stats.errors


@pytest.mark.usefixtures("backend")
async def test_the_cad_posts_with_external_refs_and_hands_escalations_over(
    harness: Harness, area: tuple[float, float]
) -> None:
    company_id, guard_ids = await crew(harness, area, 2)
    await harness.make_station(area)
    admin = await harness.user("admin")
    stop = asyncio.Event()
    stats = Stats()
    config = config_for(
        harness, admin, company_id, area, guards=2, incidents_per_minute=600.0, cad_share=1.0,
        drill_share=1.0, police=True, duration_s=None,
    )  # fmt: skip
    run = asyncio.create_task(simulate(config, stop, lambda line: None))
    try:
        found = await until(lambda: _sim_incidents(harness, area), "incidents from the CAD")
        first = found[-1]
        assert first["source"] == "police" and first["external_ref"].startswith("SIM-11-")
        assert first["exercise"] is True  # every incident of this run is a drill
        escalated = await harness.post(f"/api/v1/incidents/{first['id']}/escalate", {})
        assert escalated.status_code == 200, escalated.text
        done = await until(
            lambda: incident_in(harness, first["id"], "resolved", "closed"), "the handover"
        )
        assert [e["status"] for e in done["escalations"]] == ["handed_over"]
    finally:
        stop.set()
        async with asyncio.timeout(WAIT_S):
            stats = await run
    assert stats.incidents_posted >= 1 and stats.police_steps >= 3
    assert stats.drills == stats.incidents_posted
    # What the run issued is revoked at the end: its CAD key and the guards' device tokens.
    async with harness.ctx.db.transaction(readonly=True) as session:
        keys = (
            await session.scalars(select(ApiKey).where(ApiKey.name.like("simulated-cad-11-%")))
        ).all()
        tokens = (
            await session.scalars(select(GuardToken).where(GuardToken.guard_id.in_(guard_ids)))
        ).all()
    assert keys and all(key.revoked_at is not None for key in keys)
    assert len(tokens) == 2 and all(token.revoked_at is not None for token in tokens)


async def _count(items: Awaitable[list[Any]], n: int) -> bool:
    return len(await items) == n


async def _acked_all(harness: Harness, guard_id: str) -> bool:
    async with harness.ctx.db.transaction(readonly=True) as session:
        last_seq, acked = await outbox.channel_state(session, guard_id)
    return last_seq > 0 and acked == last_seq


async def _all_closed(harness: Harness, guard_ids: list[str]) -> bool:
    return all(harness.ctx.hub.guard_link(gid) is None for gid in guard_ids)


async def _reconnected(harness: Harness, guard_id: str, old: object) -> bool:
    link = harness.ctx.hub.guard_link(guard_id)
    return link is not None and link is not old


async def _sim_incidents(harness: Harness, area: tuple[float, float]) -> list[dict[str, Any]]:
    response = await harness.get(
        "/api/v1/incidents",
        params={"near": f"{area[0]},{area[1]}", "radius_m": 500, "source": "police"},
    )
    return [i for i in response.json()["items"] if (i.get("external_ref") or "").startswith("SIM-")]


@pytest.mark.usefixtures("backend")
async def test_guards_report_intel_the_desk_triages_and_the_alarm_company_posts_and_cancels(
    harness: Harness, area: tuple[float, float]
) -> None:
    company_id, guard_ids = await crew(harness, area, 2)
    admin = await harness.user("admin")
    stop = asyncio.Event()
    chatty = dataclasses.replace(
        BRISK,
        intel_per_hour=720.0,  # about one report every 5 s per guard
        triage_after_s=(0.1, 0.2),
        alarm_cancel_rate=1.0,
        alarm_cancel_after_s=(0.1, 0.2),
    )
    config = config_for(
        harness, admin, company_id, area, guards=2, police=True, alarms_per_minute=60.0,
        behaviour=chatty,
    )  # fmt: skip
    run = asyncio.create_task(simulate(config, stop, lambda line: None))
    account = account_number(company_id)
    try:
        triaged = await until(lambda: _intel(harness, guard_ids, triaged=True), "a verdict")
        reporter = triaged[0]["guard_id"]
        await until(lambda: _acked_all(harness, reporter), "the verdict acknowledged")
        cancelled = await until(lambda: _alarms(harness, account, cancelled=True), "a cancel")
        assert cancelled[0]["cancel_reason"] == "keyholder_cancel"
        incident = await harness.get(f"/api/v1/incidents/{cancelled[0]['incident_id']}")
        assert incident.json()["status"] == "cancelled"
    finally:
        stop.set()
        async with asyncio.timeout(WAIT_S):
            stats = await run
    assert stats.intel_reported >= stats.intel_accepted >= 1
    assert stats.intel_triaged >= 1 and stats.intel_feedback >= 1
    assert stats.alarms_accepted >= 1 and stats.alarms_cancelled >= 1
    assert set(stats.alarms_rejected) <= {"duplicate"}, stats.alarms_rejected
    # A guard's status report may cross the keyholder's cancel: refused, and the phone
    # drops the job. Writers are concurrent on PostgreSQL, so a guard signing off as the
    # simulator stops may also cross it (assignment_active: still assigned when it asked).
    # Nothing else goes wrong.
    assert set(stats.errors) <= {"invalid_transition", "assignment_active"}, stats.errors
    # The site is reused by the next run (active again), and the receiver's key is revoked.
    accounts = await harness.get("/api/v1/alarm-accounts", params={"account": account})
    assert [a["status"] for a in accounts.json()["items"]] == ["active"]
    async with harness.ctx.db.transaction(readonly=True) as session:
        keys = (
            await session.scalars(
                select(ApiKey).where(ApiKey.name.like("simulated-alarm-receiver-11-%"))
            )
        ).all()
    assert keys and all(key.revoked_at is not None for key in keys)


async def _intel(harness: Harness, guard_ids: list[str], *, triaged: bool) -> list[Any]:
    found = []
    for guard_id in guard_ids:
        response = await harness.get("/api/v1/intel", params={"guard_id": guard_id})
        found += [i for i in response.json()["items"] if (i["state"] != "new") == triaged]
    return found


async def _alarms(harness: Harness, account: str, *, cancelled: bool) -> list[Any]:
    response = await harness.get("/api/v1/alarms", params={"account": account})
    return [a for a in response.json()["items"] if (a["cancelled_at"] is not None) == cancelled]


async def _company_report(harness: Harness, company_id: str) -> dict[str, Any] | None:
    """The company's response report once guards arrived ahead of police who took over."""
    response = await harness.get(
        "/api/v1/reports/response", params={"group_by": "company", "company_id": company_id}
    )
    assert response.status_code == 200, response.text
    total = response.json()["total"]
    return total if total["handovers"] >= 1 and total["early_disposals"] >= 1 else None


@pytest.mark.usefixtures("backend")
async def test_a_simulated_run_gives_non_trivial_response_reports(
    harness: Harness, area: tuple[float, float]
) -> None:
    """Guards accept and arrive, the CAD's police arrive later and take over: the report
    the supervisors read has every kind of figure in it, from a run, not from fixtures."""
    company_id, _ = await crew(harness, area, 3)
    await harness.make_station(area)
    admin = await harness.user("admin")
    stop = asyncio.Event()
    unhurried_police = dataclasses.replace(
        BRISK, police_delays_s=((0.5, 0.6), (1.0, 1.2), (0.3, 0.4))
    )

    async def keep_time() -> None:  # the server's clock is manual: let it run as real time
        while True:
            await asyncio.sleep(0.05)
            harness.clock.advance(0.05)

    config = config_for(
        harness, admin, company_id, area, incidents_per_minute=240.0, cad_share=1.0,
        police=True, behaviour=unhurried_police, duration_s=None,
    )  # fmt: skip
    ticking = asyncio.create_task(keep_time())
    run = asyncio.create_task(simulate(config, stop, lambda line: None))
    try:
        total = await until(
            lambda: _company_report(harness, company_id), "a handover after guards arrived"
        )
    finally:
        ticking.cancel()
        stop.set()
        async with asyncio.timeout(WAIT_S):
            await run
    assert total["incidents"] >= 1 and total["accepted"] >= 1
    assert total["acceptance_rate"] == 1.0  # BRISK guards accept everything
    assert total["accept_s_p50"] is not None and total["on_scene_s_p50"] is not None
    assert total["minutes_gained_total"] > 0 and total["escalations"] >= 1
