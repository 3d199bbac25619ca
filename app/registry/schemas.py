"""Request and response bodies of the registry API (DESIGN §5 resource shapes)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from app.schemas import (
    Code,
    Day,
    Input,
    Location,
    LocationOut,
    Name,
    ObjectId,
    Output,
    Phone,
    Skill,
    UtcDateTime,
)

CompanyStatus = Literal["active", "suspended"]
GuardStatus = Literal["active", "suspended", "left"]
UnitKind = Literal["patrol_car", "foot", "motorcycle"]
UnitStatus = Literal[
    "available", "dispatched", "en_route", "on_scene", "busy", "off_duty", "out_of_service"
]
Skills = Annotated[list[Skill], Field(max_length=16)]


def _unique(skills: list[str] | None) -> list[str] | None:
    return None if skills is None else sorted(set(skills))


class CompanyCreate(Input):
    name: Name
    licence_no: Code
    licence_expires_on: Day
    status: CompanyStatus = "active"


class CompanyUpdate(Input):
    name: Name | None = None
    licence_no: Code | None = None
    licence_expires_on: Day | None = None
    status: CompanyStatus | None = None


class CompanyOut(Output):
    id: str
    name: str
    licence_no: str
    licence_expires_on: dt.date
    status: str
    created_at: UtcDateTime
    updated_at: UtcDateTime


class GuardCreate(Input):
    company_id: ObjectId
    name: Name
    badge_no: Code
    phone: Phone | None = None
    skills: Skills = []
    certificate_expires_on: Day
    status: GuardStatus = "active"

    _skills = field_validator("skills")(_unique)


class GuardUpdate(Input):
    name: Name | None = None
    badge_no: Code | None = None
    phone: Phone | None = None
    skills: Skills | None = None
    certificate_expires_on: Day | None = None
    status: GuardStatus | None = None
    # The local date the guard left (status `left`); today when not given.
    left_on: Day | None = None

    _skills = field_validator("skills")(_unique)


class GuardOut(Output):
    id: str
    company_id: str
    name: str
    badge_no: str
    phone: str | None
    skills: list[str]
    certificate_expires_on: dt.date
    status: str
    left_on: dt.date | None = None
    created_at: UtcDateTime
    updated_at: UtcDateTime


class GuardTokenOut(Output):
    token: str
    token_id: str
    guard_id: str


class StationCreate(Input):
    name: Name
    jurisdiction: dict[str, Any]
    contact_phone: Phone | None = None


class StationUpdate(Input):
    name: Name | None = None
    jurisdiction: dict[str, Any] | None = None
    contact_phone: Phone | None = None


class StationOut(Output):
    id: str
    name: str
    jurisdiction: dict[str, Any]
    contact_phone: str | None
    created_at: UtcDateTime
    updated_at: UtcDateTime


class UnitCreate(Input):
    call_sign: Code
    station_id: ObjectId
    kind: UnitKind
    status: UnitStatus = "available"
    location: Location | None = None


class UnitUpdate(Input):
    call_sign: Code | None = None
    station_id: ObjectId | None = None
    kind: UnitKind | None = None
    status: UnitStatus | None = None
    location: Location | None = None


class UnitOut(Output):
    id: str
    call_sign: str
    station_id: str
    kind: str
    status: str
    location: LocationOut | None
    located_at: UtcDateTime | None
    created_at: UtcDateTime
    updated_at: UtcDateTime
