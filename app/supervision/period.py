"""A report's period: whole local days in DISPATCH_TIMEZONE, stored instants in UTC."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from app.errors import Unprocessable

DEFAULT_DAYS = 30
MAX_DAYS = 731
EARLIEST, LATEST = dt.date(2000, 1, 1), dt.date(2999, 12, 31)


@dataclass(frozen=True)
class Period:
    """[first, last] local days, both inclusive, in `zone`."""

    first: dt.date
    last: dt.date
    zone: ZoneInfo

    def day_start(self, day: dt.date) -> dt.datetime:
        """The UTC instant a local day begins (DST-correct: midnight as the zone has it)."""
        return dt.datetime.combine(day, dt.time(), self.zone).astimezone(dt.UTC)

    @property
    def start(self) -> dt.datetime:
        return self.day_start(self.first)

    @property
    def end(self) -> dt.datetime:
        """Exclusive: the start of the day after the last."""
        return self.day_start(self.last + dt.timedelta(days=1))

    @property
    def days(self) -> list[dt.date]:
        return [self.first + dt.timedelta(days=n) for n in range((self.last - self.first).days + 1)]


def local_today(now: dt.datetime, zone: ZoneInfo) -> dt.date:
    return now.astimezone(zone).date()


def period_of(
    first: dt.date | None, last: dt.date | None, *, now: dt.datetime, zone: ZoneInfo
) -> Period:
    """The period a report asks for; by default the 30 days up to today (local)."""
    for field, day in (("from", first), ("to", last)):
        if day is not None and not EARLIEST <= day <= LATEST:
            raise Unprocessable(field, f"must be between {EARLIEST} and {LATEST}")
    last = last or local_today(now, zone)
    first = first or last - dt.timedelta(days=DEFAULT_DAYS - 1)
    if first > last:
        raise Unprocessable("from", f"{first.isoformat()} is after to ({last.isoformat()})")
    if (last - first).days + 1 > MAX_DAYS:
        raise Unprocessable("to", f"a report covers at most {MAX_DAYS} days")
    return Period(first, last, zone)
