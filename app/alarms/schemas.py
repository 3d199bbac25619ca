"""Alarm account and alarm request and response bodies (DESIGN §8 field linkage)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, field_validator

from app.alarms.priority import Verification
from app.incidents.schemas import IncidentOut
from app.schemas import (
    Input,
    Instant,
    Location,
    LocationOut,
    Name,
    Note,
    Output,
    Phone,
    UtcDateTime,
)

AccountStatus = Literal["active", "suspended"]
Outcome = Literal["accepted", "rejected"]
Reason = Literal["too_old", "unknown_account", "duplicate", "account_suspended"]
CancelReason = Literal["keyholder_cancel", "false_alarm"]

# The alarm company's own identifiers: printable ASCII without spaces.
AccountNumber = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=r"^[!-~]+$")
]
Zone = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=r"^[!-~]+$")
]
EventCode = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=16, pattern=r"^[A-Za-z0-9]+$"
    ),
]
AlarmText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]


class Contact(Input):
    """A keyholder or site contact the operator may call."""

    name: Name
    phone: Phone | None = None
    role: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None


Contacts = Annotated[list[Contact], Field(max_length=20)]


class AlarmAccountCreate(Input):
    company_id: Annotated[str, StringConstraints(min_length=1, max_length=40)]
    account: AccountNumber
    site_name: Name
    location: Location
    contacts: Contacts = []


class AlarmAccountUpdate(Input):
    site_name: Name | None = None
    location: Location | None = None
    contacts: Contacts | None = None
    status: AccountStatus | None = None


class AlarmAccountOut(Output):
    id: str
    company_id: str
    account: str
    site_name: str
    location: LocationOut
    station_id: str | None
    contacts: list[dict[str, Any]]
    status: str
    created_by: str
    created_at: UtcDateTime
    updated_at: UtcDateTime


class AlarmCreate(Input):
    account: AccountNumber
    zone: Zone | None = None
    event_code: EventCode
    occurred_at: Instant
    verification: Verification
    description: AlarmText | None = None


class AlarmCancel(Input):
    """Body of a cancel: why (a keyholder's cancel, or a false alarm) and a note."""

    reason: CancelReason = "keyholder_cancel"
    note: Note | None = None


class AlarmOut(Output):
    id: str
    account: str
    account_id: str | None
    company_id: str | None
    station_id: str | None
    zone: str | None
    event_code: str
    verification: str
    description: str | None
    occurred_at: UtcDateTime
    received_at: UtcDateTime
    outcome: str
    reason: str | None
    duplicate_of: str | None
    priority: int | None
    incident_id: str | None
    cancelled_at: UtcDateTime | None
    cancel_reason: str | None
    cancelled_by: str | None

    @field_validator("zone")
    @classmethod
    def _no_zone(cls, value: str | None) -> str | None:
        return value or None  # stored as '' so that the duplicate key has no NULL in it


class AlarmAccepted(AlarmOut):
    """The 201 answer: the alarm and the incident it opened."""

    incident: IncidentOut
