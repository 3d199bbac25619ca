"""Dispatch policy per priority and category (DESIGN §4): pure data, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from app.dispatch.tiers import (
    CROWD_GUIDANCE,
    DETAIN_UNTIL_POLICE,
    FIRST_AID,
    OBSERVE_REPORT,
    SECURE_SCENE,
    TIERS,
    Tier,
)

FOOT_SPEED_MPS = 1.4
VEHICLE_SPEED_MPS = 8.0
VEHICLE_SKILL = "patrol_vehicle"


@dataclass(frozen=True)
class Policy:
    """How one incident is staffed and when the police are told."""

    guards: int
    radii_m: tuple[float, ...]
    offer_timeout_s: float
    fanout: int = 3
    escalate_immediately: bool = False
    escalate_after_waves: int | None = None
    on_scene_deadline_s: float | None = None
    escalate_on_backup: bool = True
    escalate_when_unstaffed: bool = True
    required_skills: frozenset[str] = frozenset()
    preferred_skills: frozenset[str] = frozenset()
    # What guards may be asked to do (app/dispatch/tiers.py), and whether the incident is
    # beyond guard powers altogether (then: observe_report only, police at once).
    tiers: tuple[Tier, ...] = (OBSERVE_REPORT,)
    beyond_guard_powers: bool = False


_WIDE = (500.0, 1000.0, 2000.0, 5000.0)
_NARROW = (1000.0, 3000.0)

DEFAULT_BY_PRIORITY: dict[int, Policy] = {
    1: Policy(guards=2, radii_m=_WIDE, offer_timeout_s=15, escalate_immediately=True),
    2: Policy(
        guards=1,
        radii_m=_WIDE,
        offer_timeout_s=20,
        escalate_after_waves=2,
        on_scene_deadline_s=300,
    ),
    3: Policy(guards=1, radii_m=_NARROW, offer_timeout_s=30),
    # "Operator only": neither a backup request nor running out of guards calls the police.
    4: Policy(
        guards=1,
        radii_m=_NARROW,
        offer_timeout_s=60,
        escalate_on_backup=False,
        escalate_when_unstaffed=False,
    ),
}

DEFAULT_SKILLS_BY_CATEGORY: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    # category: (required, preferred)
    "medical": (frozenset({"first_aid"}), frozenset({"aed"})),
    "fire": (frozenset(), frozenset({"fire"})),
}

# The most a guard may be asked to do per category, within art. 29/30 of the Regulations on
# the Administration of Security Services and art. 84 of the Criminal Procedure Law.
# Observing and reporting is always allowed. Holding a person is only for categories where
# someone may be caught in the act of a crime; a disturbance or a dispute is not one
# (art. 30(4): no settling disputes by force), a suspicion is not one either (art. 30(1)).
TIERS_BY_CATEGORY: dict[str, frozenset[Tier]] = {
    "assault": frozenset({OBSERVE_REPORT, SECURE_SCENE, FIRST_AID, DETAIN_UNTIL_POLICE}),
    "robbery": frozenset({OBSERVE_REPORT, SECURE_SCENE, FIRST_AID, DETAIN_UNTIL_POLICE}),
    "theft": frozenset({OBSERVE_REPORT, SECURE_SCENE, DETAIN_UNTIL_POLICE}),
    "fire": frozenset({OBSERVE_REPORT, SECURE_SCENE, FIRST_AID, CROWD_GUIDANCE}),
    "medical": frozenset({OBSERVE_REPORT, FIRST_AID, CROWD_GUIDANCE}),
    "disturbance": frozenset({OBSERVE_REPORT, FIRST_AID, CROWD_GUIDANCE}),
    "suspicious": frozenset({OBSERVE_REPORT}),
    "alarm": frozenset({OBSERVE_REPORT, SECURE_SCENE}),
    "traffic": frozenset({OBSERVE_REPORT, SECURE_SCENE, FIRST_AID, CROWD_GUIDANCE}),
    "missing_person": frozenset({OBSERVE_REPORT, FIRST_AID}),
    "other": frozenset({OBSERVE_REPORT, SECURE_SCENE}),
}

# Beyond guard powers: armed robbery, weapons, hostage taking. DESIGN §3 fixes the category
# list and has none of those, so the closest stand in: a priority-1 robbery or assault is
# violence under way with a threat to life. Guards only observe and report; the police are
# called at once, whatever a settings override says.
BEYOND_GUARD_POWERS: frozenset[tuple[str, int]] = frozenset({("robbery", 1), ("assault", 1)})

# Priority 4 is a report after the fact: nobody is caught in the act any more.
DETAIN_UP_TO_PRIORITY = 3


def tiers_for(category: str, priority: int) -> tuple[Tier, ...]:
    """The tiers a guard may be asked to perform for this category and priority, in order."""
    if (category, priority) in BEYOND_GUARD_POWERS:
        return (OBSERVE_REPORT,)
    allowed = TIERS_BY_CATEGORY.get(category, frozenset({OBSERVE_REPORT}))
    if priority > DETAIN_UP_TO_PRIORITY:
        allowed = allowed - {DETAIN_UNTIL_POLICE}
    return tuple(tier for tier in TIERS if tier in allowed)


Radius = Annotated[float, Field(gt=0, le=50_000, allow_inf_nan=False)]


class PolicyOverride(BaseModel):
    """Settings-level override of any policy field; unset fields keep the default."""

    model_config = ConfigDict(extra="forbid")

    guards: Annotated[int, Field(ge=1, le=20)] | None = None
    radii_m: Annotated[list[Radius], Field(min_length=1, max_length=10)] | None = None
    offer_timeout_s: Annotated[float, Field(gt=0, le=3600)] | None = None
    fanout: Annotated[int, Field(ge=1, le=20)] | None = None
    escalate_immediately: bool | None = None
    escalate_after_waves: Annotated[int, Field(ge=1, le=10)] | None = None
    on_scene_deadline_s: Annotated[float, Field(gt=0, le=86_400)] | None = None
    escalate_on_backup: bool | None = None
    escalate_when_unstaffed: bool | None = None
    required_skills: list[str] | None = None
    preferred_skills: list[str] | None = None

    def apply(self, policy: Policy) -> Policy:
        changes = self.model_dump(exclude_none=True)
        if "radii_m" in changes:
            changes["radii_m"] = tuple(sorted(changes["radii_m"]))
        for key in ("required_skills", "preferred_skills"):
            if key in changes:
                changes[key] = frozenset(changes[key])
        return replace(policy, **changes)


class PolicyOverrides(BaseModel):
    """Overrides keyed by priority (1–4) and by incident category; category wins."""

    model_config = ConfigDict(extra="forbid")

    priority: dict[Annotated[int, Field(ge=1, le=4)], PolicyOverride] = {}
    category: dict[str, PolicyOverride] = {}


def policy_for(category: str, priority: int, overrides: PolicyOverrides | None = None) -> Policy:
    """The effective policy for an incident of this category and priority."""
    policy = DEFAULT_BY_PRIORITY[priority]
    required, preferred = DEFAULT_SKILLS_BY_CATEGORY.get(category, (frozenset(), frozenset()))
    beyond = (category, priority) in BEYOND_GUARD_POWERS
    policy = replace(
        policy,
        required_skills=required,
        preferred_skills=preferred,
        tiers=tiers_for(category, priority),
        beyond_guard_powers=beyond,
    )
    if overrides is not None:
        if priority in overrides.priority:
            policy = overrides.priority[priority].apply(policy)
        if category in overrides.category:
            policy = overrides.category[category].apply(policy)
    if beyond:  # the law's line, not a tunable: no override delays the police
        policy = replace(policy, escalate_immediately=True)
    return policy


def travel_speed_mps(skills: frozenset[str] | set[str]) -> float:
    """Guards with a patrol vehicle travel at vehicle speed, everyone else on foot."""
    return VEHICLE_SPEED_MPS if VEHICLE_SKILL in skills else FOOT_SPEED_MPS
