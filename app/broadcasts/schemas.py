"""Broadcast request and response bodies."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import Field, StringConstraints

from app.schemas import Input, Location, LocationOut, Output, UtcDateTime

MAX_RADIUS_M = 20_000.0  # a district; wider is a city-wide alert, not a guard broadcast
MAX_LIFETIME = dt.timedelta(hours=72)

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000)]


class BroadcastCreate(Input):
    location: Location
    radius_m: Annotated[float, Field(gt=0, le=MAX_RADIUS_M, allow_inf_nan=False, strict=True)]
    text: Text
    expires_at: dt.datetime


class BroadcastOut(Output):
    id: str
    text: str
    location: LocationOut
    radius_m: float
    expires_at: UtcDateTime
    active: bool
    station_id: str | None
    sender: str = Field(serialization_alias="from")
    created_by: str
    created_at: UtcDateTime
    recipients: int  # guards it was queued for
    delivered: int  # of them, sent on a socket at least once
    acknowledged: int  # of them, acknowledged by the phone (cumulative ack past its seq)
