"""The load a scenario runs its fault under: incidents posted, instructed, resolved and closed.

Incidents go to the replicas in turn. A request that fails with 503, a dropped connection
or a timeout is tried again (on the next replica) with the same Idempotency-Key, as a
client must: the 201 is the promise that the incident is durable. Every attempt is timed
and kept, so a scenario can tell how fast a broken replica answered. Each incident gets an
instruction to whoever is working it after about 2 s, and is resolved and closed after
about 6 s, so guards come free again and offers are withdrawn, expire or are accepted.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.common import ADMIN_PASSWORD, ADMIN_USER, offset

RETRY_FOR_S = 45.0  # how long a request is retried before it counts as failed
REQUEST_TIMEOUT_S = 15.0  # client-side: a request that takes longer is a stall
BACKOFF_S = (0.2, 2.0)  # first and longest pause between tries


@dataclass
class Attempt:
    replica: int
    what: str
    status: int  # 0: no answer (connection refused or reset, or our timeout)
    seconds: float
    started: float  # time.time()
    retry_after: bool = False
    answer: str = ""  # the body of an unexpected 5xx, for the report


@dataclass
class Record:
    """What the clients were told: the ledger's other half."""

    incidents: dict[str, str] = field(default_factory=dict)  # idempotency key → id (201)
    unconfirmed: list[str] = field(default_factory=list)  # keys never answered 201
    instructions: list[tuple[str, str, list[str]]] = field(default_factory=list)  # 201s
    attempts: list[Attempt] = field(default_factory=list)


class Api:
    """The admin's HTTP client across replicas (one bearer token: replicas share the key)."""

    def __init__(self, base_urls: list[str], record: Record) -> None:
        self.base_urls = base_urls
        self.record = record
        self.http = httpx.AsyncClient(timeout=REQUEST_TIMEOUT_S)
        self.down: Callable[[int], bool] = lambda _replica: False

    async def login(self) -> None:
        for base in self.base_urls:
            with contextlib.suppress(httpx.HTTPError):
                response = await self.http.post(
                    f"{base}/api/v1/auth/token",
                    data={"username": ADMIN_USER, "password": ADMIN_PASSWORD},
                )
                response.raise_for_status()
                self.http.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
                return
        raise RuntimeError("no replica signs the admin in")

    async def close(self) -> None:
        await self.http.aclose()

    async def once(
        self, replica: int, method: str, path: str, what: str, **kwargs: Any
    ) -> httpx.Response | None:
        """One request to one replica, timed and kept; None if nothing came back."""
        started, t0 = time.time(), time.perf_counter()
        response: httpx.Response | None = None
        try:
            response = await self.http.request(method, f"{self.base_urls[replica]}{path}", **kwargs)
        except httpx.HTTPError:
            pass
        status = response.status_code if response is not None else 0
        self.record.attempts.append(
            Attempt(
                replica,
                what,
                status,
                time.perf_counter() - t0,
                started,
                response is not None and "retry-after" in response.headers,
                response.text[:300] if response is not None and status >= 500 else "",
            )
        )
        return response

    async def call(
        self, method: str, path: str, what: str, *, first: int = 0, **kwargs: Any
    ) -> httpx.Response | None:
        """The request until a replica answers something other than a 5xx (bounded); None
        if none did within RETRY_FOR_S. Only for requests that may be repeated (an
        Idempotency-Key, or an action whose repeat is a 409): a 500 is still counted as a
        failure by the scenario, but the client carries on as a careful one would."""
        deadline = time.monotonic() + RETRY_FOR_S
        replica = first % len(self.base_urls)
        pause = BACKOFF_S[0]
        while time.monotonic() < deadline:
            if not self.down(replica):
                response = await self.once(replica, method, path, what, **kwargs)
                if response is not None and response.status_code < 500:
                    return response
                if response is not None:  # 503: as long as it says, within our bounds
                    with contextlib.suppress(ValueError):
                        pause = float(response.headers.get("retry-after", pause))
            replica = (replica + 1) % len(self.base_urls)
            # Jittered and growing, as a client should, so a recovery is not a stampede.
            pause = min(max(pause, BACKOFF_S[0]), BACKOFF_S[1])
            await asyncio.sleep(pause * random.uniform(0.5, 1.0))
            pause *= 2
        return None


@dataclass
class Workload:
    """Posts `rate` incidents a second near the guards until stopped; then lets them end."""

    api: Api
    record: Record
    spots: list[tuple[float, float]]  # where guards stand: incidents happen near them
    rate: float = 3.0
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    lifetimes: set[asyncio.Task[Any]] = field(default_factory=set)
    _rng: random.Random = field(default_factory=lambda: random.Random(13))
    _count: int = 0

    async def run(self, seconds: float) -> None:
        """Post for `seconds`, each incident in its own task (its life goes on after)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self._spawn(self.incident())
            await asyncio.sleep(1.0 / self.rate)

    async def settle(self, timeout_s: float) -> None:
        """Wait (bounded) for every incident's life to finish; cancel what is left."""
        deadline = time.monotonic() + timeout_s
        while self.lifetimes and time.monotonic() < deadline:
            await asyncio.wait(list(self.lifetimes), timeout=deadline - time.monotonic())
        for task in list(self.lifetimes):
            task.cancel()

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(work)
        self.lifetimes.add(task)
        task.add_done_callback(self.lifetimes.discard)

    async def incident(self, first: int | None = None) -> str | None:
        """Post one incident (to replica `first`, else the next in turn) until it is
        confirmed; its instruction, resolve and close follow in a task of their own."""
        n = self._count
        self._count += 1
        key = f"faults-{self.tag}-{n}"
        lat, lon = self._rng.choice(self.spots)
        lat, lon = offset(lat, lon, self._rng.uniform(-150, 150), self._rng.uniform(-150, 150))
        priority = 1 if n % 5 == 0 else 3  # priority 1 escalates at once and wants 2 guards
        body = {
            "category": "theft",
            "priority": priority,
            "location": {"lat": lat, "lon": lon},
            "description": f"fault suite {key}",
        }
        response = await self.api.call(
            "POST",
            "/api/v1/incidents",
            "post incident",
            first=n if first is None else first,
            json=body,
            headers={"Idempotency-Key": key},
        )
        if response is None or response.status_code != 201:
            self.record.unconfirmed.append(key)
            return None
        incident_id = str(response.json()["id"])
        self.record.incidents[key] = incident_id
        self._spawn(self._life(incident_id, n))
        return incident_id

    async def _life(self, incident_id: str, n: int) -> None:
        await asyncio.sleep(self._rng.uniform(1.5, 2.5))
        await self._instruct(incident_id, n)
        await asyncio.sleep(self._rng.uniform(3.0, 5.0))
        path = f"/api/v1/incidents/{incident_id}"
        if (await self.api.call("POST", f"{path}/resolve", "resolve", first=n)) is not None:
            await self.api.call("POST", f"{path}/close", "close", first=n)

    async def _instruct(self, incident_id: str, n: int) -> None:
        """One instruction, never retried after a lost answer (it might have been sent):
        the ledger takes what was sent from the database and checks the 201s against it."""
        text = f"hold the north door ({uuid.uuid4().hex[:8]})"
        for attempt in range(10):
            replica = (n + attempt) % len(self.api.base_urls)
            if self.api.down(replica):
                continue
            response = await self.api.once(
                replica,
                "POST",
                f"/api/v1/incidents/{incident_id}/instructions",
                "instruct",
                json={"text": text},
            )
            if response is None:
                return
            if response.status_code == 201:
                guards = [str(g) for g in response.json()["guards"]]
                self.record.instructions.append((incident_id, text, guards))
                return
            if response.status_code != 503:
                return  # 409 no_guards: nobody took it (yet)
            await asyncio.sleep(0.5)
