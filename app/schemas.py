"""Request/response primitives shared by every API: strict input, named constraints."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    field_validator,
)

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

# Input as the OpenAPI document declares it. Left to itself pydantic also takes a number
# for a date (seconds since 1970) and a string for an integer; the document says
# `format: date` / `format: date-time` / `type: integer`, so those are refused here, and
# an integer-valued number (4.0), which JSON Schema counts as an integer, is taken:
# `Annotated[int, Field(ge=…, strict=True), BeforeValidator(whole_number)]`.
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_INSTANT = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})", re.ASCII
)


def _iso_date(value: Any) -> Any:
    if isinstance(value, str) and _DATE.fullmatch(value) or isinstance(value, dt.date):
        return value
    raise ValueError("must be a date as YYYY-MM-DD")


def _iso_instant(value: Any) -> Any:
    if isinstance(value, str) and _INSTANT.fullmatch(value) or isinstance(value, dt.datetime):
        return value
    raise ValueError("must be an RFC 3339 date-time with a timezone (e.g. 2026-11-21T10:00:00Z)")


def whole_number(value: Any) -> Any:
    """Before an integer field's own (strict) validation: 4.0 is 4; '4' and true are not."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("must be an integer")
    return value


Day = Annotated[dt.date, BeforeValidator(_iso_date)]
Instant = Annotated[dt.datetime, BeforeValidator(_iso_instant)]

T = TypeVar("T")

Skill = Literal["first_aid", "aed", "fire", "patrol_vehicle", "k9", "crowd_control"]
SKILLS: tuple[str, ...] = Skill.__args__  # type: ignore[attr-defined]


def refuse_nul(value: Any) -> Any:
    """No text anywhere in a value may hold NUL: PostgreSQL's text cannot store it (the
    insert would fail after validation passed), and no field has a use for it."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("must not contain the NUL character (U+0000)")
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            refuse_nul(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            refuse_nul(key)
            refuse_nul(item)
    return value


class Input(BaseModel):
    """A request body: unknown fields are rejected so typos do not pass silently."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    _no_nul = field_validator("*", mode="after")(refuse_nul)


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
