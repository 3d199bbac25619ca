"""Who gets the next offers: rank nearby guards by estimated arrival. Pure functions."""

from __future__ import annotations

from dataclasses import dataclass

from app.dispatch.policy import FOOT_SPEED_MPS, Policy
from app.geo.live_index import Nearby


@dataclass(frozen=True, slots=True)
class Candidate:
    guard_id: str
    distance_m: float
    eta_s: float
    travel_mode: str  # foot | vehicle
    missing_preferred: int


def rank(nearby: list[Nearby], policy: Policy) -> list[Candidate]:
    """Guards with the policy's required skills, preferred skills first, then soonest arrival.

    Arrival is straight-line distance over the guard's travel speed (foot 1.4 m/s,
    vehicle 8 m/s), so a patrol car 2 km away can outrank a walker 400 m away.
    """
    candidates = []
    for item in nearby:
        entry = item.entry
        if not policy.required_skills <= entry.skills:
            continue
        speed = entry.speed_mps
        candidates.append(
            Candidate(
                guard_id=entry.guard_id,
                distance_m=item.distance_m,
                eta_s=item.distance_m / speed,
                travel_mode="foot" if speed <= FOOT_SPEED_MPS else "vehicle",
                missing_preferred=len(policy.preferred_skills - entry.skills),
            )
        )
    candidates.sort(key=lambda c: (c.missing_preferred, c.eta_s, c.guard_id))
    return candidates
