"""Password verification off the event loop, bounded: a flood of logins cannot take the host.

argon2id is slow on purpose (tens to hundreds of milliseconds of CPU and 64 MiB each).
Unbounded, 300 concurrent bad logins ran 300 hashes at once in the default thread pool and
an authenticated read behind them took 20 s. Here at most `workers` verifications run at
once, in threads of their own (one core is left to the event loop), and at most
`max_waiting` more queue for one; past that a login is turned away at once with 429 and
Retry-After instead of queueing for longer than its client would wait. Callers hold no
database connection and no writer turn while they wait or hash (app/auth/signin.py).

`running` and `peak` count verifications in progress and the most seen at once; `shed`
counts logins turned away.
"""

from __future__ import annotations

import asyncio
import os
import threading
from concurrent.futures import ThreadPoolExecutor

from app.auth import secrets
from app.errors import TooManyRequests


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class Busy(TooManyRequests):
    def __init__(self) -> None:
        super().__init__(
            "too many sign-ins in progress; retry in a moment",
            details={"retry_after_s": 1},
            retry_after_s=1,
        )


class PasswordHashing:
    def __init__(self, workers: int, max_waiting: int) -> None:
        self.workers = workers
        self.max_waiting = max_waiting
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="argon2")
        self._lock = threading.Lock()
        self.admitted = 0  # waiting or running
        self.running = 0
        self.peak = 0
        self.shed = 0

    def admit(self) -> None:
        """Take a place in the queue, or raise Busy (429) when it is full; pair with
        `leave`. Taken before any other work, so a login turned away costs nothing."""
        with self._lock:
            if self.admitted >= self.workers + self.max_waiting:
                self.shed += 1
                raise Busy()
            self.admitted += 1

    def leave(self) -> None:
        with self._lock:
            self.admitted -= 1

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """argon2 verification in the pool (the dummy hash when there is no account).
        Between `admit` and `leave` only."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._verify, password_hash, password)

    def _verify(self, password_hash: str | None, password: str) -> bool:
        with self._lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
        try:
            return secrets.verify_password(password_hash, password)
        finally:
            with self._lock:
                self.running -= 1


_WORKERS = max(1, usable_cores() - 1)
HASHING = PasswordHashing(workers=_WORKERS, max_waiting=16 * _WORKERS)
