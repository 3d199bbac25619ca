"""A phone's idea of the server's time: learnt from `welcome`/`pong`, strictly increasing."""

from __future__ import annotations

import datetime as dt
import time

UTC = dt.UTC


def parse_time(value: str) -> dt.datetime:
    """An ISO 8601 time from the server (with `Z`)."""
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


class PhoneClock:
    """Local time shifted by the server's offset, so pings pass the server's `at` checks.

    A phone's own clock may be wrong (and a test server's clock is a ManualClock), so the
    offset comes from the server. It only moves forward: a ping's `at` must be after the
    last one, and a backwards correction would make the next ping look like a teleport.
    """

    def __init__(self) -> None:
        self.offset_s: float | None = None
        self._last_at = 0.0

    def sync(self, server_time: str) -> None:
        offset = parse_time(server_time).timestamp() - time.time()
        if self.offset_s is None or offset > self.offset_s:
            self.offset_s = offset

    def now(self) -> dt.datetime:
        """The server's time now, as far as this phone knows."""
        return dt.datetime.fromtimestamp(time.time() + (self.offset_s or 0.0), UTC)

    def stamp(self) -> str:
        """A ping's `at`: now on the server's clock, strictly after the previous stamp."""
        at = max(self.now().timestamp(), self._last_at + 0.001)
        self._last_at = at
        return (
            dt.datetime.fromtimestamp(at, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z")
        )
