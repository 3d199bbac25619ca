"""The dispatch decisions as pure functions: no database, server or clock."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from hypothesis import given
from hypothesis import strategies as st

from app.dispatch import decisions
from app.dispatch.policy import PolicyOverride, policy_for
from app.models.status import ENDED_INCIDENT, OPEN_INCIDENT

T0 = dt.datetime(2026, 11, 21, 10, 0, tzinfo=dt.UTC)
GUARDS = [f"g{i}" for i in range(12)]


def test_accept_of_an_offer_already_won_is_a_repeat_not_a_withdrawal() -> None:
    assert decisions.judge_accept("accepted", T0, T0 + dt.timedelta(hours=1)) == "repeat"


def test_accept_of_a_closed_offer_is_closed_and_of_a_stale_one_late() -> None:
    later = T0 + dt.timedelta(seconds=1)
    for outcome in ("declined", "expired", "withdrawn"):
        assert decisions.judge_accept(outcome, later, T0) == "closed"
    assert decisions.judge_accept(None, T0, T0) == "late"
    assert decisions.judge_accept(None, later, T0) == "assign"


def test_every_ending_withdraws_with_its_own_status_and_open_statuses_none() -> None:
    for ended in ("resolved", "closed", "cancelled"):
        assert decisions.withdraw_reason(ended) == ended
    for open_status in ("new", "dispatching", "assigned", "on_scene"):
        assert decisions.withdraw_reason(open_status) is None


def test_priority_four_leaves_the_police_to_operators_when_unstaffed() -> None:
    assert decisions.escalation_when_unstaffed(policy_for("theft", 4)) is None
    call = decisions.escalation_when_unstaffed(policy_for("theft", 3))
    assert call is not None and call.reason == "no_guard"


def test_priority_two_escalates_for_policy_before_the_third_wave_only_if_nobody_accepted() -> None:
    policy = policy_for("medical", 2)
    assert decisions.escalation_before_wave(policy, 2, 0) is None
    assert decisions.escalation_before_wave(policy, 3, 0) == decisions.EscalationCall(
        "policy", "no_acceptance_after_2_waves"
    )
    assert decisions.escalation_before_wave(policy, 3, 1) is None
    assert decisions.escalation_before_wave(policy_for("theft", 3), 3, 0) is None


def test_only_open_unstaffed_incidents_short_of_guards_are_offered_again() -> None:
    assert decisions.may_restaff("dispatching", True, 0, 1)
    assert not decisions.may_restaff("dispatching", False, 0, 1)
    assert not decisions.may_restaff("assigned", True, 1, 1)
    for ended in ("resolved", "closed", "cancelled"):
        assert not decisions.may_restaff(ended, True, 0, 1)


@given(
    ranked=st.lists(st.sampled_from(GUARDS), max_size=20),
    refused=st.sets(st.sampled_from(GUARDS)),
    engaged=st.sets(st.sampled_from(GUARDS)),
    target=st.integers(0, 15),
)
def test_a_wave_never_offers_a_refused_or_engaged_guard_nor_more_than_its_target(
    ranked: list[str], refused: set[str], engaged: set[str], target: int
) -> None:
    picked = decisions.pick_wave(ranked, refused, engaged, target)
    assert len(picked) <= target and len(set(picked)) == len(picked)
    assert not set(picked) & (refused | engaged)
    assert picked == sorted(picked, key=ranked.index)  # rank order kept


@given(
    radii=st.lists(st.floats(1, 50_000), min_size=1, max_size=10),
    waves=st.lists(st.integers(1, 12), min_size=2, max_size=6),
)
def test_waves_never_shrink(radii: list[float], waves: list[int]) -> None:
    policy = PolicyOverride(radii_m=radii).apply(policy_for("theft", 3))
    ordered = sorted(waves)
    reach = [decisions.wave_radius(policy, w) for w in ordered]
    assert reach == sorted(reach)


@given(
    fanout=st.integers(1, 20),
    required=st.integers(1, 20),
    assigned=st.integers(0, 25),
    pending=st.integers(0, 60),
)
def test_a_wave_is_fanout_times_still_needed_less_pending(
    fanout: int, required: int, assigned: int, pending: int
) -> None:
    policy = PolicyOverride(fanout=fanout).apply(policy_for("theft", 3))
    target = decisions.wave_target(policy, required, assigned, pending)
    assert 0 <= target <= fanout * max(0, required - assigned)
    if assigned >= required:
        assert target == 0


@dataclass
class Model:
    """An incident driven only by the decisions, as the effectful layer applies them."""

    required: int
    status: str = "dispatching"
    assigned: int = 0
    offers: dict[str, str | None] = field(default_factory=dict)  # guard → outcome
    refused: set[str] = field(default_factory=set)

    def wave(self, ranked: list[str]) -> None:
        if not decisions.needs_guards(self.status, self.assigned, self.required):
            return
        policy = policy_for("theft", 3)
        pending = sum(1 for o in self.offers.values() if o is None)
        target = decisions.wave_target(policy, self.required, self.assigned, pending)
        engaged = {g for g, o in self.offers.items() if o in (None, "accepted")}
        for guard in decisions.pick_wave(ranked, self.refused, engaged, target):
            assert guard not in self.refused
            self.offers[guard] = None

    def accept(self, guard: str) -> None:
        if guard not in self.offers:
            return
        verdict = decisions.judge_accept(self.offers[guard], T0 + dt.timedelta(1), T0)
        seat_free = self.status in OPEN_INCIDENT and self.assigned < self.required
        if verdict == "assign" and seat_free:
            self.offers[guard] = "accepted"
            self.assigned += 1
        elif verdict == "assign":
            self.offers[guard] = "withdrawn"  # filled: stands, returned not raised

    def refuse(self, guard: str) -> None:
        if self.offers.get(guard, "x") is None:
            self.offers[guard] = "declined"
            self.refused.add(guard)

    def end(self, target: str) -> None:
        reason = decisions.withdraw_reason(target)
        assert reason is not None
        self.offers = {g: ("withdrawn" if o is None else o) for g, o in self.offers.items()}
        self.status = target


steps = st.lists(
    st.one_of(
        st.tuples(st.just("wave"), st.permutations(GUARDS)),
        st.tuples(st.just("accept"), st.sampled_from(GUARDS)),
        st.tuples(st.just("refuse"), st.sampled_from(GUARDS)),
        st.tuples(st.just("end"), st.sampled_from(["resolved", "cancelled"])),
    ),
    max_size=40,
)


@given(required=st.integers(1, 4), script=steps)
def test_any_run_never_over_assigns_never_re_offers_a_refusal_and_ends_with_no_open_offer(
    required: int, script: list[tuple[str, object]]
) -> None:
    model = Model(required=required)
    for action, arg in script:
        if model.status in ENDED_INCIDENT:
            break
        if action == "wave":
            model.wave(list(arg))  # type: ignore[call-overload]
        elif action == "end":
            model.end(str(arg))
        else:
            getattr(model, action)(str(arg))
        assert model.assigned <= model.required
        assert all(model.offers[g] == "declined" for g in model.refused)
    if model.status in ENDED_INCIDENT:
        assert None not in model.offers.values()
