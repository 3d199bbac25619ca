"""The incident state machine (DESIGN §3), as pure functions of the current status."""

from __future__ import annotations

from app.errors import InvalidTransition

STATUSES = ("new", "dispatching", "assigned", "on_scene", "resolved", "closed", "cancelled")
OPEN = frozenset({"new", "dispatching", "assigned", "on_scene"})
TERMINAL = frozenset({"closed", "cancelled"})

# Operator and police actions: which statuses each may start from, and where it leads.
_ACTIONS: dict[str, tuple[frozenset[str], str]] = {
    "cancel": (OPEN, "cancelled"),
    "resolve": (OPEN, "resolved"),
    "close": (frozenset({"resolved"}), "closed"),
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
        return "on_scene"
    if assigned > 0:
        return "assigned"
    return "dispatching" if current != "new" else current
