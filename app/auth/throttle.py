"""Login throttling: too many failed logins for one name from one address answer 429."""

from __future__ import annotations

import time
from collections import deque


class LoginThrottle:
    def __init__(self, max_failures: int = 10, window_s: float = 300.0) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self._failures: dict[tuple[str, str], deque[float]] = {}

    def retry_after(self, client: str, username: str) -> float:
        """Seconds until another attempt is allowed; 0 when allowed now."""
        failures = self._recent(client, username)
        if len(failures) < self.max_failures:
            return 0.0
        return max(0.0, failures[0] + self.window_s - time.monotonic())

    def failed(self, client: str, username: str) -> None:
        self._recent(client, username).append(time.monotonic())
        if len(self._failures) > 100_000:  # bound memory under a spray of usernames
            self._failures.clear()

    def succeeded(self, client: str, username: str) -> None:
        self._failures.pop((client, username), None)

    def _recent(self, client: str, username: str) -> deque[float]:
        failures = self._failures.setdefault((client, username), deque())
        horizon = time.monotonic() - self.window_s
        while failures and failures[0] < horizon:
            failures.popleft()
        return failures
