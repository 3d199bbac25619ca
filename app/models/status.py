"""The values of the status columns, in one place. They are strings in the database, the
API and the guard protocol; a StrEnum member equals its string, so both read the same."""

from __future__ import annotations

from enum import StrEnum


class IncidentStatus(StrEnum):
    NEW = "new"
    DISPATCHING = "dispatching"
    ASSIGNED = "assigned"
    ON_SCENE = "on_scene"
    RESOLVED = "resolved"
    CLOSED = "closed"
    CANCELLED = "cancelled"


class OfferOutcome(StrEnum):
    """An offer's `outcome`; null while it is open."""

    ACCEPTED = "accepted"
    DECLINED = "declined"
    EXPIRED = "expired"
    WITHDRAWN = "withdrawn"


class AssignmentStatus(StrEnum):
    EN_ROUTE = "en_route"
    ON_SCENE = "on_scene"
    CLEARED = "cleared"


class EscalationStatus(StrEnum):
    SENT = "sent"
    ACKNOWLEDGED = "acknowledged"
    POLICE_ON_SCENE = "police_on_scene"
    HANDED_OVER = "handed_over"


class EngagementKind(StrEnum):
    """What holds a guard (guard_engagements.kind)."""

    OFFER = "offer"
    ASSIGNMENT = "assignment"


OPEN_INCIDENT = frozenset(
    {
        IncidentStatus.NEW,
        IncidentStatus.DISPATCHING,
        IncidentStatus.ASSIGNED,
        IncidentStatus.ON_SCENE,
    }
)
ENDED_INCIDENT = frozenset(
    {IncidentStatus.RESOLVED, IncidentStatus.CLOSED, IncidentStatus.CANCELLED}
)
TERMINAL_INCIDENT = frozenset({IncidentStatus.CLOSED, IncidentStatus.CANCELLED})
