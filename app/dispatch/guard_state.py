"""What an on-duty guard is doing, as a console shows it: one state from plain facts.

Pure functions of the index's facts and the time, so they are tested without a database.
"""

from __future__ import annotations

import math
from typing import Literal

GuardState = Literal[
    "available", "offered", "en_route", "on_scene", "stale", "offline", "unavailable"
]
STATES: tuple[GuardState, ...] = GuardState.__args__  # type: ignore[attr-defined]
ACTIVITIES = frozenset({"offered", "en_route", "on_scene"})


def guard_state(
    *,
    connected: bool,
    seen_at: float,
    fresh_after: float,
    activity: str | None,
    eligible: bool,
) -> GuardState:
    """The state of an on-duty guard with a known position.

    The first that applies wins: offline (no socket), stale (position older than the
    freshness window), its activity (offered / en_route / on_scene), available, and
    unavailable (guard or company not active, certificate or licence expired). So a guard
    reported available is always connected, fresh, free and eligible.
    """
    if not connected:
        return "offline"
    if seen_at < fresh_after:
        return "stale"
    if activity is not None:
        return activity  # type: ignore[return-value]
    return "available" if eligible else "unavailable"


def state_expires_at(
    state: GuardState, *, seen_at: float, freshness_s: float, eligible_until: float
) -> float:
    """When time alone (no event) next changes this state; infinity when it never does.

    Connected guards go stale `freshness_s` after they were last seen, and an available
    guard turns unavailable when its certificate or the company's licence runs out.
    """
    if state in ("offline", "stale"):
        return math.inf
    stale_at = seen_at + freshness_s
    return min(stale_at, eligible_until) if state == "available" else stale_at
