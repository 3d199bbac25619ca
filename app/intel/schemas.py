"""Intel report request and response bodies."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import StringConstraints

from app.schemas import Input, LocationOut, Output, UtcDateTime

IntelState = Literal["new", "useful", "not_useful", "acted_on"]
Verdict = Literal["useful", "not_useful", "acted_on"]
TriageNote = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]


class TriageRequest(Input):
    """The police's verdict on an intel report; the note goes back to the guard."""

    state: Verdict
    note: TriageNote


class IntelOut(Output):
    id: str
    guard_id: str
    subject: str
    description: str
    location: LocationOut
    station_id: str | None
    station_match: str | None
    state: str
    note: str | None
    triaged_by: str | None
    triaged_at: UtcDateTime | None
    reported_at: UtcDateTime
