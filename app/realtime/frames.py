"""The guard protocol's frames (DESIGN §5): incoming ones validated, outgoing ones built.

Every frame is a JSON object with a `type`. Incoming frames are parsed in one pass by a
discriminated union; a problem becomes a `FrameError` with a code and a message that
names the field, sent back as an `error` frame while the connection stays open.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    field_validator,
)

from app.clock import isoformat
from app.dispatch import tiers
from app.incidents.schemas import Category, Description
from app.models import Assignment, Incident, Offer
from app.schemas import refuse_nul


def _range(low: float, high: float) -> AfterValidator:
    def check(value: float) -> float:
        if not low <= value <= high:
            raise ValueError(f"must be between {low:g} and {high:g}")
        return value

    return AfterValidator(check)


# A phone's clock is never this far off; outside it, times only overflow arithmetic.
EARLIEST = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
LATEST = dt.datetime(2100, 1, 1, tzinfo=dt.UTC)


def _instant(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        raise ValueError("must include a timezone (e.g. Z)")
    message = f"must be between {EARLIEST.year} and {LATEST.year}"
    try:
        value = value.astimezone(dt.UTC)
    except OverflowError:
        raise ValueError(message) from None
    if not EARLIEST <= value < LATEST:
        raise ValueError(message)
    return value


Finite = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Lat = Annotated[Finite, _range(-90, 90)]
Lon = Annotated[Finite, _range(-180, 180)]
Id = Annotated[str, StringConstraints(min_length=1, max_length=40)]
Seq = Annotated[int, Field(strict=True, ge=0, le=2**63 - 1)]  # JSON's int64
Instant = Annotated[dt.datetime, Field(strict=True), AfterValidator(_instant)]


class _Frame(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    _no_nul = field_validator("*", mode="after")(refuse_nul)


class Hello(_Frame):
    type: Literal["hello"]
    resume_after: Seq | None = None
    token: Annotated[str, StringConstraints(max_length=512)] | None = None


class Location(_Frame):
    type: Literal["location"]
    lat: Lat
    lon: Lon
    accuracy_m: Annotated[Finite, _range(0, 10_000)] | None = None
    heading: Annotated[Finite, _range(0, 360)] | None = None
    speed_mps: Annotated[Finite, _range(0, 150)] | None = None
    at: Instant


class Duty(_Frame):
    type: Literal["duty"]
    on: Annotated[bool, Field(strict=True)]


class Ack(_Frame):
    type: Literal["ack"]
    seq: Seq


class OfferAccept(_Frame):
    type: Literal["offer.accept"]
    offer_id: Id


class OfferDecline(_Frame):
    type: Literal["offer.decline"]
    offer_id: Id
    reason: Annotated[str, StringConstraints(max_length=200)] | None = None


class AssignmentStatus(_Frame):
    type: Literal["assignment.status"]
    assignment_id: Id
    status: Literal["en_route", "on_scene", "cleared"]
    note: Annotated[str, StringConstraints(max_length=2000)] | None = None


IntelSubject = Literal[
    "suspicious_person", "suspicious_vehicle", "hazard", "wanted_sighting", "other"
]


class Report(_Frame):
    """`kind: incident` (the default) files an incident and puts the reporter on scene;
    `kind: intel` only informs the police (needs `subject`; category and priority are
    the incident's and are refused)."""

    type: Literal["report"]
    kind: Literal["incident", "intel"] = "incident"
    category: Category | None = None
    subject: IntelSubject | None = None
    priority: Annotated[int, Field(strict=True, ge=1, le=4)] | None = None
    description: Description
    lat: Lat
    lon: Lon

    def problem(self) -> FrameError | None:
        """What the fields of this kind of report lack or must not have, or None."""
        if self.kind == "incident":
            if self.category is None:
                return FrameError("invalid_frame", "report.category: Field required", "report")
            if self.subject is not None:
                return FrameError(
                    "invalid_frame", "report.subject: only for kind 'intel'", "report"
                )
            return None
        if self.subject is None:
            return FrameError(
                "invalid_frame", "report.subject: required when kind is 'intel'", "report"
            )
        for name in ("category", "priority"):
            if getattr(self, name) is not None:
                return FrameError(
                    "invalid_frame",
                    f"report.{name}: not used when kind is 'intel' (use subject)",
                    "report",
                )
        return None


class BackupRequest(_Frame):
    type: Literal["backup.request"]
    incident_id: Id


class Ping(_Frame):
    type: Literal["ping"]


IncomingFrame = Annotated[
    Hello
    | Location
    | Duty
    | Ack
    | OfferAccept
    | OfferDecline
    | AssignmentStatus
    | Report
    | BackupRequest
    | Ping,
    Field(discriminator="type"),
]
_incoming: TypeAdapter[Any] = TypeAdapter(IncomingFrame)
FRAME_TYPES = frozenset(
    m.model_fields["type"].annotation.__args__[0]  # type: ignore[union-attr]
    for m in (
        Hello,
        Location,
        Duty,
        Ack,
        OfferAccept,
        OfferDecline,
        AssignmentStatus,
        Report,
        BackupRequest,
        Ping,
    )
)


class FrameError(Exception):
    """A frame the server refuses: becomes `{"type": "error", code, message, ref}`."""

    def __init__(self, code: str, message: str, ref: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.ref = ref

    def frame(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "error", "code": self.code, "message": self.message}
        if self.ref is not None:
            out["ref"] = self.ref
        return out


def parse(text: str | bytes) -> Any:
    """One incoming frame, or FrameError naming what is wrong."""
    try:
        frame = _incoming.validate_json(text)
    except ValidationError as exc:
        raise _frame_error(exc) from None
    # The fields a report needs depend on its kind: checked here, with the rest.
    if isinstance(frame, Report) and (problem := frame.problem()) is not None:
        raise problem
    return frame


def _frame_error(exc: ValidationError) -> FrameError:
    errors = exc.errors(include_url=False)
    first = errors[0]
    kind = first["type"]
    if kind == "json_invalid" or kind == "model_type" or kind == "model_attributes_type":
        return FrameError("invalid_json", "frame must be a JSON object")
    if kind == "union_tag_not_found":
        return FrameError("invalid_frame", "type: required")
    if kind == "union_tag_invalid":
        tag = first.get("ctx", {}).get("tag", "?")
        return FrameError("unknown_type", f"type: unknown frame type '{tag}'", ref=str(tag))
    loc = [str(part) for part in first["loc"]]
    if not loc:
        return FrameError("invalid_frame", "frame must be a JSON object with a type")
    frame_type = loc[0] if loc else None
    message = first["msg"].removeprefix("Value error, ")
    return FrameError("invalid_frame", f"{'.'.join(loc)}: {message}", ref=frame_type)


# Outgoing frames ----------------------------------------------------------------------


def incident_payload(incident: Incident) -> dict[str, Any]:
    """The incident as a guard sees it."""
    return {
        "id": incident.id,
        "category": incident.category,
        "priority": incident.priority,
        "status": incident.status,
        "location": {"lat": incident.lat, "lon": incident.lon},
        "address": incident.address,
        "description": incident.description,
        "exercise": incident.exercise,
    }


def powers(incident: Incident) -> dict[str, Any]:
    """What the guard may be asked to do here (fixed at intake) and the safety note."""
    return {
        "allowed_tiers": list(incident.allowed_tiers),
        "safety_note": tiers.safety_note(incident.allowed_tiers),
    }


def offer_frame(offer: Offer, incident: Incident) -> dict[str, Any]:
    return {
        "type": "offer",
        "offer_id": offer.id,
        "incident": incident_payload(incident),
        "distance_m": round(offer.distance_m, 1),
        "eta_s": round(offer.eta_s),
        "travel_mode": offer.travel_mode,
        "ranked_by": "eta",
        "wave": offer.wave,
        "offered_at": isoformat(offer.offered_at),
        "expires_at": isoformat(offer.expires_at),
        "exercise": incident.exercise,  # a drill: the phone shows DRILL
        **powers(incident),
    }


def withdrawn_frame(offer_id: str, reason: str) -> dict[str, Any]:
    return {"type": "offer.withdrawn", "offer_id": offer_id, "reason": reason}


def assignment_frame(assignment: Assignment, incident: Incident) -> dict[str, Any]:
    return {
        "type": "assignment",
        "assignment_id": assignment.id,
        "status": assignment.status,
        "incident": incident_payload(incident),
        "exercise": incident.exercise,
        **powers(incident),
    }


def incident_update_frame(incident: Incident, note: str | None = None) -> dict[str, Any]:
    frame: dict[str, Any] = {
        "type": "incident.update",
        "incident": incident_payload(incident),
        "exercise": incident.exercise,
    }
    if note:
        frame["note"] = note
    return frame


def instruction_frame(
    incident_id: str, text: str, sender: str, tier: str | None = None, exercise: bool = False
) -> dict[str, Any]:
    frame: dict[str, Any] = {
        "type": "instruction",
        "incident_id": incident_id,
        "text": text,
        "from": sender,
        "exercise": exercise,
    }
    if tier is not None:
        frame["tier"] = tier
    return frame


def intel_feedback_frame(
    intel_id: str, subject: str, state: str, note: str | None, sender: str
) -> dict[str, Any]:
    """The police's verdict on a guard's intel report."""
    return {
        "type": "intel.feedback",
        "intel_id": intel_id,
        "subject": subject,
        "state": state,
        "note": note,
        "from": sender,
    }


def broadcast_frame(
    broadcast_id: str,
    text: str,
    sender: str,
    location: dict[str, float],
    radius_m: float,
    expires_at: dt.datetime,
) -> dict[str, Any]:
    """An area broadcast: an `instruction` about no incident, naming its broadcast."""
    return {
        "type": "instruction",
        "incident_id": None,
        "broadcast_id": broadcast_id,
        "text": text,
        "from": sender,
        "location": location,
        "radius_m": radius_m,
        "expires_at": isoformat(expires_at),
    }
