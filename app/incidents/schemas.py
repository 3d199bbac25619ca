"""Incident request and response bodies (DESIGN §5)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, Field, StringConstraints, computed_field

from app.dispatch import tiers
from app.dispatch.tiers import Tier
from app.schemas import (
    Input,
    Location,
    LocationOut,
    Name,
    Note,
    Output,
    Phone,
    UtcDateTime,
    whole_number,
)

Category = Literal[
    "assault",
    "robbery",
    "theft",
    "fire",
    "medical",
    "disturbance",
    "suspicious",
    "alarm",
    "traffic",
    "missing_person",
    "other",
]
Source = Literal["console", "police", "guard", "alarm"]
Status = Literal["new", "dispatching", "assigned", "on_scene", "resolved", "closed", "cancelled"]
Priority = Annotated[int, Field(ge=1, le=4, strict=True), BeforeValidator(whole_number)]
Description = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000)
]
Address = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)]
ExternalRef = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$"
    ),
]


class Reporter(Input):
    name: Name | None = None
    phone: Phone | None = None


class IncidentCreate(Input):
    category: Category
    priority: Priority
    location: Location
    address: Address | None = None
    description: Description
    source: Source | None = None
    external_ref: ExternalRef | None = None
    required_guards: (
        Annotated[int, Field(ge=1, le=20, strict=True), BeforeValidator(whole_number)] | None
    ) = None
    reporter: Reporter | Name | None = None  # a name alone, or {name, phone}
    # A drill: dispatched end to end, and marked as one in everything it sends.
    exercise: Annotated[bool, Field(strict=True)] = False


class IncidentAction(Input):
    """Body of cancel / resolve / close: an optional note for the timeline."""

    note: Note | None = None


class IncidentOut(Output):
    id: str
    status: str
    source: str
    category: str
    priority: int
    location: LocationOut
    address: str | None
    description: str
    reporter: dict[str, Any] | None
    external_ref: str | None
    required_guards: int
    station_id: str | None
    station_match: str | None
    unstaffed: bool
    created_by: str
    created_at: UtcDateTime
    updated_at: UtcDateTime
    resolved_at: UtcDateTime | None
    closed_at: UtcDateTime | None
    cancelled_at: UtcDateTime | None
    allowed_tiers: list[str]
    exercise: bool

    @computed_field  # type: ignore[prop-decorator]
    @property
    def safety_note(self) -> dict[str, str]:
        """What guards are told with the offer: allowed tiers and what is never allowed."""
        return tiers.safety_note(self.allowed_tiers)


class OfferOut(Output):
    id: str
    incident_id: str
    guard_id: str
    wave: int
    rank: int
    distance_m: float
    eta_s: float
    travel_mode: str
    offered_at: UtcDateTime
    expires_at: UtcDateTime
    outcome: str | None
    responded_at: UtcDateTime | None
    reason: str | None


class AssignmentOut(Output):
    id: str
    incident_id: str
    guard_id: str
    offer_id: str | None
    source: str
    status: str
    assigned_at: UtcDateTime
    on_scene_at: UtcDateTime | None
    cleared_at: UtcDateTime | None
    note: str | None


class EscalationOut(Output):
    id: str
    incident_id: str
    station_id: str
    reason: str
    status: str
    outside_jurisdiction: bool
    distance_to_jurisdiction_m: float | None
    recommended_units: list[dict[str, Any]]
    unit_id: str | None
    note: str | None
    created_at: UtcDateTime
    updated_at: UtcDateTime
    acknowledged_at: UtcDateTime | None
    police_on_scene_at: UtcDateTime | None
    handed_over_at: UtcDateTime | None


class IncidentDetail(IncidentOut):
    assigned_count: int
    wave: int
    offers: list[OfferOut]
    assignments: list[AssignmentOut]
    escalations: list[EscalationOut]


class EscalateRequest(Input):
    note: Note | None = None
    station_id: Annotated[str, StringConstraints(min_length=1, max_length=40)] | None = None


class PoliceAction(Input):
    """Body of police/ack, police/arrived and police/handover."""

    unit_id: Annotated[str, StringConstraints(min_length=1, max_length=40)] | None = None
    note: Note | None = None
    station_id: Annotated[str, StringConstraints(min_length=1, max_length=40)] | None = None


class InstructionIn(Input):
    text: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000)]
    guard_id: Annotated[str, StringConstraints(min_length=1, max_length=40)] | None = None
    # The risk tier the instruction asks for; one the incident does not allow is refused.
    tier: Tier | None = None


class InstructionOut(BaseModel):
    incident_id: str
    guards: list[str]
    tier: str | None = None


class AssignRequest(Input):
    guard_id: Annotated[str, StringConstraints(min_length=1, max_length=40)]
    note: Note | None = None


class EventOut(Output):
    id: str
    type: str
    incident_id: str | None
    station_id: str | None
    actor: str
    at: str
    data: dict[str, Any]
