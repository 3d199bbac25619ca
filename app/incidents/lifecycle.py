"""The incident state machine (DESIGN §3), as pure functions of the current status."""

from __future__ import annotations

from app.errors import InvalidTransition
from app.models.status import OPEN_INCIDENT, TERMINAL_INCIDENT, IncidentStatus

STATUSES = tuple(IncidentStatus)
OPEN = OPEN_INCIDENT
TERMINAL = TERMINAL_INCIDENT

# Operator and police actions: which statuses each may start from, and where it leads.
_ACTIONS: dict[str, tuple[frozenset[str], str]] = {
    "cancel": (OPEN, IncidentStatus.CANCELLED),
    "resolve": (OPEN, IncidentStatus.RESOLVED),
    "close": (frozenset({IncidentStatus.RESOLVED}), IncidentStatus.CLOSED),
}


def after_action(action: str, current: str) -> str:
    """The status an action leads to, or InvalidTransition (HTTP 409) naming the current one."""
    allowed, target = _ACTIONS[action]
    if current not in allowed:
        raise InvalidTransition(action, "incident", current)
    return target


def staffing_status(current: str, assigned: int, on_scene: int) -> str:
    """Status implied by the guards' assignments, for an open incident."""
    if current not in OPEN:
        return current
    if on_scene > 0:
        return IncidentStatus.ON_SCENE
    if assigned > 0:
        return IncidentStatus.ASSIGNED
    return IncidentStatus.DISPATCHING if current != IncidentStatus.NEW else current
