"""Recognition points: which events earn a guard points, decided from plain facts.

The rules and their default points; DISPATCH_POINTS (a JSON object) changes the points of
any of them, 0 turns one off. The ledger (app/supervision/ledger.py) loads the facts for
an event, asks these functions, and writes what they return.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

DEFAULT_POINTS: dict[str, int] = {
    "first_on_scene_p1": 10,
    "first_on_scene": 4,
    "clean_handover": 5,
    "intel_useful": 5,
    "commendation": 20,
    "complaint": -20,
    "no_show": -10,
}
REASONS = {
    "first_on_scene_p1": "first guard on scene at a priority-1 incident",
    "first_on_scene": "first guard on scene",
    "clean_handover": "on scene when the police took over",
    "intel_useful": "intel report found useful by the police",
    "commendation": "commended by the police",
    "complaint": "complaint from the police",
    "no_show": "accepted but never reached the scene",
}
USEFUL_VERDICTS = frozenset({"useful", "acted_on"})


@dataclass(frozen=True)
class Award:
    guard_id: str
    rule: str
    ref: str  # what earned it: an incident, an intel report or a feedback id
    detail: str = ""

    @property
    def reason(self) -> str:
        return REASONS[self.rule] + (f": {self.detail}" if self.detail else "")


def points_table(overrides: Mapping[str, int]) -> dict[str, int]:
    unknown = set(overrides) - DEFAULT_POINTS.keys()
    if unknown:
        raise ValueError(f"unknown points rules {sorted(unknown)}; known: {sorted(DEFAULT_POINTS)}")
    return {**DEFAULT_POINTS, **overrides}


def on_scene(guard_id: str, incident_id: str, priority: int, *, first: bool) -> list[Award]:
    """The first guard to reach an incident (the ledger leaves a reporting guard, who
    starts on scene, out of "first")."""
    if not first:
        return []
    rule = "first_on_scene_p1" if priority == 1 else "first_on_scene"
    return [Award(guard_id, rule, incident_id)]


def handover(incident_id: str, on_scene_guards: Iterable[str]) -> list[Award]:
    """Every guard still on scene when the police take over handed over cleanly."""
    return [Award(guard_id, "clean_handover", incident_id) for guard_id in on_scene_guards]


def intel_verdict(guard_id: str, intel_id: str, verdict: str) -> list[Award]:
    """Once per report (the ledger's unique key), whether useful first or acted on."""
    return [Award(guard_id, "intel_useful", intel_id)] if verdict in USEFUL_VERDICTS else []


def feedback(kind: str, guard_id: str, feedback_id: str, text: str) -> list[Award]:
    return [Award(guard_id, kind, feedback_id, text[:200])]


def stood_down(
    guard_id: str, incident_id: str, *, accepted_offer: bool, reached_scene: bool, own_doing: bool
) -> list[Award]:
    """A guard who accepted and then left the incident before reaching it, by clearing
    themselves or losing contact — not one the police or an operator stood down."""
    if accepted_offer and not reached_scene and own_doing:
        return [Award(guard_id, "no_show", incident_id)]
    return []
