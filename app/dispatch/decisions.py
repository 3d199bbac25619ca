"""The dispatch engine's decisions as pure functions of plain values: no I/O, no clock.

The effectful modules (engine, offers, assignments, police, operator) load state, ask one
of these what to do, and write the answer in one transaction. The database still settles
races (a conditional UPDATE or a primary key says who won); these decide what follows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from app.dispatch.policy import Policy
from app.models.status import ENDED_INCIDENT, OPEN_INCIDENT, OfferOutcome

AcceptVerdict = Literal["assign", "repeat", "closed", "late"]


def judge_accept(outcome: str | None, expires_at: dt.datetime, now: dt.datetime) -> AcceptVerdict:
    """What a guard's `offer.accept` means before any seat is counted.

    `repeat`: the guard already won this offer, so the answer is the same assignment again
    (phones retry after reconnects). `closed`: the offer ended some other way. `late`: still
    open but past its deadline; the expiry timer will close it, nothing is written here.
    `assign`: try for a seat (the database's conditional UPDATE decides).
    """
    if outcome == OfferOutcome.ACCEPTED:
        return "repeat"
    if outcome is not None:
        return "closed"
    if expires_at <= now:
        return "late"
    return "assign"


def withdraw_reason(target: str) -> str | None:
    """The `offer.withdrawn` reason when an incident moves to `target`; None if it stays open.

    Every way an incident ends stands its open offers down with the status it ended in:
    cancelled, resolved (an operator, the last guard clearing, a police handover) or closed.
    """
    return target if target in ENDED_INCIDENT else None


def needs_guards(status: str, assigned: int, required: int) -> bool:
    """An open incident still short of guards."""
    return status in OPEN_INCIDENT and assigned < required


def wave_target(policy: Policy, required: int, assigned: int, pending: int = 0) -> int:
    """How many new offers a wave sends: fanout × still-needed, less those still pending."""
    still_needed = max(0, required - assigned)
    return max(0, policy.fanout * still_needed - pending)


def pick_wave(
    ranked: Sequence[str], refused: Iterable[str], engaged: Iterable[str], target: int
) -> list[str]:
    """The first `target` ranked guards who neither refused this incident nor are engaged."""
    excluded = set(refused) | set(engaged)
    picked: list[str] = []
    for guard_id in ranked:
        if len(picked) >= target:
            break
        if guard_id not in excluded and guard_id not in picked:
            picked.append(guard_id)
    return picked


def wave_radius(policy: Policy, wave: int) -> float:
    """The search radius of wave `wave` (1-based); past the last, the last one stays."""
    return policy.radii_m[min(max(wave, 1), len(policy.radii_m)) - 1]


EscalationReason = Literal["policy", "no_guard", "backup_request", "operator"]


@dataclass(frozen=True, slots=True)
class EscalationCall:
    """Escalate with this reason (and the policy rule that fired, if any)."""

    reason: EscalationReason
    rule: str | None = None


def escalation_before_wave(policy: Policy, wave: int, assigned: int) -> EscalationCall | None:
    """The wave rule: `escalate_after_waves` passed with no guard accepted.

    It is checked before each wave, so with no guard anywhere a P2 incident escalates with
    `policy` (rule `no_acceptance_after_2_waves`) before its waves run out; running out then
    only re-triggers the same escalation (`no_guard`). Order is fixed, so is the reason.
    """
    limit = policy.escalate_after_waves
    if limit is not None and wave == limit + 1 and assigned == 0:
        return EscalationCall("policy", f"no_acceptance_after_{limit}_waves")
    return None


def escalation_when_unstaffed(policy: Policy) -> EscalationCall | None:
    """Waves ran out: `no_guard`, unless the policy leaves the police to operators (P4)."""
    return EscalationCall("no_guard") if policy.escalate_when_unstaffed else None


def may_restaff(status: str, unstaffed: bool, assigned: int, required: int) -> bool:
    """An unstaffed incident is offered again to guards who become available."""
    return unstaffed and status in OPEN_INCIDENT and needs_guards(status, assigned, required)


@dataclass(frozen=True, slots=True)
class Unstaffed:
    """An incident whose waves ran out, as the re-offering pass sees it."""

    incident_id: str
    lat: float
    lon: float
    radius_m: float
    required_skills: frozenset[str]


def unstaffed(incident_id: str, lat: float, lon: float, policy: Policy, wave: int) -> Unstaffed:
    """Re-offered within its last radius to guards with the policy's required skills."""
    return Unstaffed(incident_id, lat, lon, wave_radius(policy, wave), policy.required_skills)


def tier_allowed(tier: str | None, allowed: Sequence[str]) -> bool:
    """An instruction may name no tier (plain text) or one of the incident's allowed tiers."""
    return tier is None or tier in allowed
