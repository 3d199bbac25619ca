"""The status values the contract spells out (API schemas, guard frames) are the enums'."""

from __future__ import annotations

from typing import get_args

from app.incidents import lifecycle
from app.incidents.schemas import Status
from app.models.status import AssignmentStatus, IncidentStatus
from app.realtime import frames


def test_incident_statuses_in_the_api_are_the_enum() -> None:
    assert get_args(Status) == tuple(IncidentStatus) == lifecycle.STATUSES


def test_assignment_statuses_a_guard_may_send_are_the_enum() -> None:
    sent = get_args(frames.AssignmentStatus.model_fields["status"].annotation)
    assert sent == tuple(AssignmentStatus)
