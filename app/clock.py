"""Time as a dependency: the service reads `Clock.now()`, tests move a `ManualClock`."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable

UTC = dt.UTC


class Clock:
    """Wall-clock time in UTC; `sleep_until` wakes early when `nudge` is called."""

    def __init__(self) -> None:
        self._listeners: list[Callable[[], None]] = []

    def now(self) -> dt.datetime:
        return dt.datetime.now(UTC)

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call `listener` whenever the clock jumps (only a ManualClock does)."""
        self._listeners.append(listener)

    async def sleep_until(
        self, when: dt.datetime | None, wake: asyncio.Event, cap_s: float
    ) -> None:
        """Sleep until `when` (at most `cap_s`), or until `wake` is set."""
        delay = cap_s if when is None else (when - self.now()).total_seconds()
        delay = max(0.0, min(delay, cap_s))
        if delay == 0:
            await asyncio.sleep(0)  # already due: still let others run (SQLite awaits never do)
            return
        try:
            await asyncio.wait_for(wake.wait(), timeout=delay)
        except TimeoutError:
            pass


class ManualClock(Clock):
    """A clock that only moves when told to; waiters are woken on every move."""

    def __init__(self, start: dt.datetime | None = None) -> None:
        super().__init__()
        self._now = start or dt.datetime.now(UTC)

    def now(self) -> dt.datetime:
        return self._now

    def advance(self, seconds: float) -> dt.datetime:
        self._now += dt.timedelta(seconds=seconds)
        for listener in self._listeners:
            listener()
        return self._now

    async def sleep_until(
        self, when: dt.datetime | None, wake: asyncio.Event, cap_s: float
    ) -> None:
        if when is not None and when <= self._now:
            await asyncio.sleep(0)
            return
        # Real time still passes for I/O; only a jump of this clock or `wake` ends the wait.
        try:
            await asyncio.wait_for(wake.wait(), timeout=cap_s)
        except TimeoutError:
            pass


def isoformat(value: dt.datetime) -> str:
    """ISO 8601 in UTC with a Z, as every JSON time of the API."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
