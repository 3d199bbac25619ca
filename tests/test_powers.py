"""Guard powers by risk tier: the pure policy (no database), then offers, assignments,
instructions, the beyond-powers rule and the tier catalogue against a real server."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, get_args

import pytest
from alembic.script import ScriptDirectory
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.dispatch import decisions
from app.dispatch.policy import (
    BEYOND_GUARD_POWERS,
    PolicyOverride,
    PolicyOverrides,
    policy_for,
    tiers_for,
)
from app.dispatch.tiers import CATALOGUE, TIERS, safety_note
from app.incidents.schemas import Category
from app.migrate import alembic_config, downgrade, upgrade
from tests.conftest import PG_URL
from tests.harness import Harness, fresh_database, start_harness
from tests.phones import guard_at, offset
from tests.test_dispatch_flow import timeline
from tests.test_errors import assert_error

CATEGORIES: tuple[str, ...] = get_args(Category)
# Where a person may be caught in the act of a crime (Criminal Procedure Law art. 84).
CAUGHT_IN_THE_ACT = {"assault", "robbery", "theft"}

categories = st.sampled_from(CATEGORIES)
priorities = st.integers(min_value=1, max_value=4)


# The policy, pure -------------------------------------------------------------------


@given(categories, priorities)
def test_every_incident_allows_observing_and_only_known_tiers_in_order(
    category: str, priority: int
) -> None:
    tiers = tiers_for(category, priority)
    assert tiers[0] == "observe_report"
    assert list(tiers) == [t for t in TIERS if t in tiers]  # catalogue order, no repeats
    assert policy_for(category, priority).tiers == tiers


@given(categories, priorities)
def test_holding_a_person_only_where_someone_may_be_caught_in_the_act(
    category: str, priority: int
) -> None:
    if "detain_until_police" in tiers_for(category, priority):
        assert category in CAUGHT_IN_THE_ACT
        assert priority <= 3  # a low-priority report is after the fact
        assert (category, priority) not in BEYOND_GUARD_POWERS


def test_categories_that_are_not_crimes_in_progress_never_hold_anyone() -> None:
    for category in ("disturbance", "suspicious", "alarm", "missing_person", "medical", "fire"):
        for priority in (1, 2, 3, 4):
            assert "detain_until_police" not in tiers_for(category, priority)
    assert "detain_until_police" in tiers_for("theft", 2)
    assert "detain_until_police" not in tiers_for("theft", 4)


@given(st.sampled_from(sorted(BEYOND_GUARD_POWERS)), st.booleans())
def test_beyond_guard_powers_is_observe_only_and_police_at_once_whatever_the_overrides(
    beyond: tuple[str, int], immediate: bool
) -> None:
    category, priority = beyond
    overrides = PolicyOverrides(
        priority={priority: PolicyOverride(escalate_immediately=immediate)},
        category={category: PolicyOverride(escalate_immediately=immediate)},
    )
    policy = policy_for(category, priority, overrides)
    assert policy.tiers == ("observe_report",)
    assert policy.beyond_guard_powers and policy.escalate_immediately


def test_the_stand_ins_for_armed_robbery_weapons_and_hostage_are_violent_p1s() -> None:
    assert BEYOND_GUARD_POWERS == {("robbery", 1), ("assault", 1)}
    assert not policy_for("robbery", 2).beyond_guard_powers
    assert policy_for("robbery", 2).tiers == (
        "observe_report",
        "secure_scene",
        "first_aid",
        "detain_until_police",
    )


@given(st.one_of(st.none(), st.sampled_from(TIERS)), categories, priorities)
def test_an_instruction_may_name_no_tier_or_an_allowed_one(
    tier: str | None, category: str, priority: int
) -> None:
    allowed = tiers_for(category, priority)
    assert decisions.tier_allowed(tier, allowed) == (tier is None or tier in allowed)


def test_catalogue_has_every_tier_in_both_languages_citing_the_law() -> None:
    assert tuple(CATALOGUE) == TIERS
    for rule in CATALOGUE.values():
        for text_ in (rule.label, rule.allows, rule.forbids, rule.basis, rule.template):
            assert set(text_) == {"en", "zh"} and all(v.strip() for v in text_.values())
        assert "art. 30" in rule.forbids["en"] or "art. 30" in rule.basis["en"]
        assert "第三十条" in rule.forbids["zh"]
    assert "art. 84" in CATALOGUE["detain_until_police"].basis["en"]
    assert "第八十四条" in CATALOGUE["detain_until_police"].basis["zh"]


def test_safety_note_names_what_is_allowed_and_what_never_is() -> None:
    observe = safety_note(["observe_report"])
    assert observe["en"].startswith("Observe and report only") and "仅限观察报告" in observe["zh"]
    note = safety_note(tiers_for("theft", 2))
    assert "Secure the scene" in note["en"] and "Hold until police arrive" in note["en"]
    assert "art. 30" in note["en"] and "art. 84" in note["en"]
    assert "保护现场" in note["zh"] and "第八十四条" in note["zh"]
    assert "art. 84" not in safety_note(tiers_for("fire", 2))["en"]


# Against a running server -----------------------------------------------------------


@pytest.mark.usefixtures("backend")
async def test_offer_assignment_and_incident_carry_the_allowed_tiers_and_a_safety_note(
    harness: Harness, area: tuple[float, float]
) -> None:
    phone = await guard_at(harness, offset(area, north_m=100))
    incident = await harness.make_incident(area, category="theft", priority=2)
    expected = ["observe_report", "secure_scene", "detain_until_police"]
    assert incident["allowed_tiers"] == expected
    assert incident["safety_note"] == safety_note(expected)
    offer = await phone.expect("offer")
    assert offer["allowed_tiers"] == expected and offer["safety_note"] == safety_note(expected)
    await phone.send({"type": "offer.accept", "offer_id": offer["offer_id"]})
    assignment = await phone.expect("assignment")
    assert assignment["allowed_tiers"] == expected
    assert set(assignment["safety_note"]) == {"en", "zh"}
    detail = (await harness.get(f"/api/v1/incidents/{incident['id']}")).json()
    assert detail["allowed_tiers"] == expected and "art. 84" in detail["safety_note"]["en"]
    await phone.close()


@pytest.mark.usefixtures("backend")
async def test_instruction_beyond_the_allowed_tiers_is_refused_and_nothing_is_sent(
    harness: Harness, area: tuple[float, float]
) -> None:
    phone = await guard_at(harness, offset(area, north_m=100))
    incident = await harness.make_incident(area, category="medical", priority=3)
    await phone.send(
        {"type": "offer.accept", "offer_id": (await phone.expect("offer"))["offer_id"]}
    )
    await phone.expect("assignment")
    url = f"/api/v1/incidents/{incident['id']}/instructions"
    police = await harness.headers("operator")

    refused = await harness.client.post(
        url, headers=police, json={"text": "hold him", "tier": "detain_until_police"}
    )
    error = assert_error(refused, 409, "tier_not_allowed")
    assert "detain_until_police" in error["message"]
    assert error["details"] == {
        "tier": "detain_until_police",
        "allowed_tiers": ["observe_report", "first_aid", "crowd_guidance"],
    }
    assert_error(
        await harness.client.post(url, headers=police, json={"text": "x", "tier": "arrest"}),
        422,
        "validation_error",
    )

    sent = await harness.client.post(
        url,
        headers=police,
        json={"text": CATALOGUE["first_aid"].template["en"], "tier": "first_aid"},
    )
    assert sent.status_code == 201 and sent.json() == {
        "incident_id": incident["id"],
        "guards": [phone.id],
        "tier": "first_aid",
    }
    # The first instruction frame is the allowed one: the refused one never went out.
    told = await phone.expect("instruction")
    assert told["tier"] == "first_aid" and told["text"].startswith("Give first aid")
    instructions = [
        e["data"]
        for e in await timeline(harness, incident["id"])
        if e["type"] == "incident.instruction"
    ]
    assert [d["tier"] for d in instructions] == ["first_aid"]
    await phone.close()


@pytest.mark.usefixtures("backend")
async def test_armed_robbery_stand_in_escalates_at_once_and_guards_only_observe(
    harness: Harness, area: tuple[float, float]
) -> None:
    station = await harness.make_station(area)
    phone = await guard_at(harness, offset(area, north_m=100))
    incident = await harness.make_incident(area, category="robbery", priority=1)
    assert incident["allowed_tiers"] == ["observe_report"]
    offer = await phone.expect("offer")
    assert offer["allowed_tiers"] == ["observe_report"]
    assert offer["safety_note"]["en"].startswith("Observe and report only")
    [sent] = [e for e in await timeline(harness, incident["id"]) if e["type"] == "escalation.sent"]
    assert sent["data"]["rule"] == "beyond_guard_powers" and sent["station_id"] == station["id"]
    await phone.send({"type": "offer.accept", "offer_id": offer["offer_id"]})
    await phone.expect("assignment")
    assert_error(
        await harness.client.post(
            f"/api/v1/incidents/{incident['id']}/instructions",
            headers=await harness.headers("operator"),
            json={"text": "secure the shop door", "tier": "secure_scene"},
        ),
        409,
        "tier_not_allowed",
    )
    await phone.close()


@pytest.mark.usefixtures("backend")
async def test_beyond_guard_powers_escalates_even_when_settings_turn_immediate_off(
    own_database_url: str, area: tuple[float, float]
) -> None:
    overrides = {"priority": {"1": {"escalate_immediately": False}}}
    async with start_harness(own_database_url, policy=overrides) as harness:
        await harness.make_station(area)
        fire = await harness.make_incident(area, category="fire", priority=1)
        robbery = await harness.make_incident(area, category="robbery", priority=1)
        sent = {
            name: [
                (e["data"]["reason"], e["data"]["rule"])
                for e in await timeline(harness, incident["id"])
                if e["type"] == "escalation.sent"
            ]
            for name, incident in (("fire", fire), ("robbery", robbery))
        }
        # No guards here: the fire waits for its waves to run out, the robbery does not wait.
        assert sent == {
            "fire": [("no_guard", None)],
            "robbery": [("policy", "beyond_guard_powers")],
        }


@pytest.mark.usefixtures("backend")
async def test_tier_catalogue_is_served_in_both_languages(harness: Harness) -> None:
    response = await harness.get("/api/v1/tiers", role="operator")
    assert response.status_code == 200
    items = response.json()["items"]
    assert [i["tier"] for i in items] == list(TIERS)
    detain = items[-1]
    assert detain["label"] == {"en": "Hold until police arrive", "zh": "扭送候警"}
    assert "第八十四条" in detain["basis"]["zh"] and detain["template"]["en"]
    assert (await harness.client.get("/api/v1/tiers")).status_code == 401


# The migration --------------------------------------------------------------------

TIERS_REVISION = "5e2a9c7d1b48"


async def _execute(url: str, statement: Any) -> list[Any]:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            result = await connection.execute(statement, {"false": False})
            return list(result.all()) if result.returns_rows else []
    finally:
        await engine.dispose()


@pytest.mark.usefixtures("backend")
async def test_existing_incidents_get_the_tiers_of_their_category_and_priority(
    backend: str, tmp_path: Path
) -> None:
    async with fresh_database(backend, PG_URL, tmp_path) as url:
        before = ScriptDirectory.from_config(alembic_config(url)).get_revision(TIERS_REVISION)
        assert before is not None and isinstance(before.down_revision, str)
        await asyncio.to_thread(downgrade, url, before.down_revision)
        for incident_id, category, priority in (
            ("inc_a", "robbery", 1),
            ("inc_b", "theft", 2),
            ("inc_c", "theft", 4),
        ):
            await _execute(
                url,
                text(
                    "INSERT INTO incidents (id, source, category, priority, lat, lon, "
                    "description, required_guards, status, unstaffed, created_by, caller, "
                    "created_at, updated_at) VALUES "
                    f"('{incident_id}', 'console', '{category}', {priority}, 39.1, 117.2, 'x', "
                    "1, 'new', :false, 'user:u', 'user:u', '2026-11-01 00:00:00', "
                    "'2026-11-01 00:00:00')"
                ),
            )
        await asyncio.to_thread(upgrade, url, TIERS_REVISION)
        engine = create_async_engine(url)
        try:
            async with engine.connect() as connection:
                rows = await connection.execute(
                    text("SELECT id, category, priority, allowed_tiers FROM incidents ORDER BY id")
                )
                stored = {row.id: row.allowed_tiers for row in rows}
        finally:
            await engine.dispose()
        if backend == "sqlite":  # JSON comes back as text through a plain text() query
            stored = {k: json.loads(v) for k, v in stored.items()}
        assert stored == {
            "inc_a": list(tiers_for("robbery", 1)),
            "inc_b": list(tiers_for("theft", 2)),
            "inc_c": list(tiers_for("theft", 4)),
        }
