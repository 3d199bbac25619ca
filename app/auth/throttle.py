"""Sign-in throttling, in memory: per username across addresses, per address across names.

Guessing one account's password from many addresses runs into the username's limit;
trying one password against many accounts from one address (spraying) runs into the
address's. Past either, the token endpoint answers 429 with Retry-After until the oldest
counted failure leaves the window. Sign-ins in progress count as if they were going to
fail, so a burst of concurrent attempts cannot slip past the limit before the first one
is decided.

Both limits look the same for an existing and a missing account (account lockout,
app/auth/signin.py, is the durable part and answers like a wrong password), so they reveal
nothing about which usernames exist. An IPv6 client is counted by its /64, the block a
single host is usually given. A success clears the username's failures (the owner proved
themselves), never the address's: logging into one's own account must not reset a spray.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

MAX_KEYS = 100_000  # per kind; the least recently failed are forgotten first
_USERNAME_KEY_CHARS = 64  # longer than any username (so all longer ones share a bucket)


@dataclass
class _Bucket:
    failures: deque[float] = field(default_factory=deque)
    in_flight: int = 0


class _Counter:
    """Failures within `window_s` (and attempts in progress) per key, at most `limit`."""

    def __init__(self, limit: int, window_s: float, now: Callable[[], float]) -> None:
        self.limit = limit
        self.window_s = window_s
        self._now = now
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def retry_after(self, key: str) -> float:
        bucket = self._buckets.get(key)
        if bucket is None:
            return 0.0
        self._expire(bucket)
        if len(bucket.failures) + bucket.in_flight < self.limit:
            return 0.0
        if len(bucket.failures) < self.limit:
            return 1.0  # full of attempts still in progress: their outcome is moments away
        return max(1.0, bucket.failures[-self.limit] + self.window_s - self._now())

    def start(self, key: str) -> None:
        self._bucket(key).in_flight += 1

    def finish(self, key: str, *, failed: bool) -> None:
        bucket = self._bucket(key)
        bucket.in_flight = max(0, bucket.in_flight - 1)
        if failed:
            bucket.failures.append(self._now())
            while len(bucket.failures) > self.limit:
                bucket.failures.popleft()
        self._forget_if_empty(key, bucket)

    def clear(self, key: str) -> None:
        bucket = self._buckets.get(key)
        if bucket is not None:
            bucket.failures.clear()
            self._forget_if_empty(key, bucket)

    def __len__(self) -> int:
        return len(self._buckets)

    def _bucket(self, key: str) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket()
            while len(self._buckets) > MAX_KEYS:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        self._expire(bucket)
        return bucket

    def _expire(self, bucket: _Bucket) -> None:
        horizon = self._now() - self.window_s
        while bucket.failures and bucket.failures[0] <= horizon:
            bucket.failures.popleft()

    def _forget_if_empty(self, key: str, bucket: _Bucket) -> None:
        if not bucket.failures and not bucket.in_flight:
            self._buckets.pop(key, None)


class LoginThrottle:
    def __init__(
        self,
        per_username: int = 10,
        per_address: int = 20,
        window_s: float = 300.0,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self._now = now
        self.by_username = _Counter(per_username, window_s, now)
        self.by_address = _Counter(per_address, window_s, now)

    def retry_after(self, address: str, username: str) -> int:
        """Whole seconds until another attempt is allowed; 0 when allowed now."""
        wait = max(
            self.by_username.retry_after(username_key(username)),
            self.by_address.retry_after(address_key(address)),
        )
        return math.ceil(wait) if wait > 0 else 0

    def started(self, address: str, username: str) -> None:
        self.by_username.start(username_key(username))
        self.by_address.start(address_key(address))

    def finished(
        self, address: str, username: str, outcome: Literal["failed", "succeeded", "abandoned"]
    ) -> None:
        """An attempt begun with `started` is over. A failure (wrong credentials, a locked
        account) counts against both; a success clears the username's failures; an
        abandoned attempt (the database was down, the server too busy) only ends."""
        failed = outcome == "failed"
        self.by_username.finish(username_key(username), failed=failed)
        self.by_address.finish(address_key(address), failed=failed)
        if outcome == "succeeded":
            self.by_username.clear(username_key(username))

    def reset(self) -> None:
        """Forget every count (tests; a restart does the same)."""
        self.by_username = _Counter(self.by_username.limit, self.by_username.window_s, self._now)
        self.by_address = _Counter(self.by_address.limit, self.by_address.window_s, self._now)

    def forget_username(self, username: str) -> None:
        """An admin unlocked the account: its failures stop counting here too."""
        self.by_username.clear(username_key(username))


def username_key(username: str) -> str:
    return username[:_USERNAME_KEY_CHARS].casefold()


def address_key(address: str) -> str:
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if isinstance(parsed, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return str(parsed)
