"""Request/response primitives shared by every API: strict input, named constraints."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, StringConstraints

from app.clock import isoformat

Latitude = Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False, strict=True)]
Longitude = Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False, strict=True)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Code = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=r"^[\w./-]+$"),
]
Phone = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\+?[0-9][0-9 -]{3,30}$")]
Note = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]
ObjectId = Annotated[str, StringConstraints(min_length=1, max_length=40)]
UtcDateTime = Annotated[dt.datetime, PlainSerializer(isoformat, return_type=str)]

T = TypeVar("T")

Skill = Literal["first_aid", "aed", "fire", "patrol_vehicle", "k9", "crowd_control"]
SKILLS: tuple[str, ...] = Skill.__args__  # type: ignore[attr-defined]


class Input(BaseModel):
    """A request body: unknown fields are rejected so typos do not pass silently."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Output(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Location(Input):
    lat: Latitude
    lon: Longitude


class LocationOut(BaseModel):
    lat: float
    lon: float


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None


def location_out(lat: float | None, lon: float | None) -> dict[str, Any] | None:
    return None if lat is None or lon is None else {"lat": lat, "lon": lon}
