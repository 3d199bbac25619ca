"""Date-time query parameters as UTC instants."""

from __future__ import annotations

import datetime as dt

from app.errors import Unprocessable


def utc(value: dt.datetime | None, field: str) -> dt.datetime | None:
    """The instant in UTC; 422 naming `field` when it has no offset or leaves the range."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise Unprocessable(field, "must include a timezone (e.g. Z)")
    try:
        return value.astimezone(dt.UTC)
    except OverflowError:
        raise Unprocessable(field, "is out of range") from None
