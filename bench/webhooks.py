"""Outbound webhook deliveries/s one server worker sends to a local HTTP receiver.

    .venv/bin/python -m bench.webhooks --db sqlite|postgres [--deliveries 1000]
        [--subscriptions 4] [--mode hold|retry]

The server runs as its own process (one worker) on a fresh database. A minimal HTTP/1.1
receiver (asyncio streams, keep-alive) runs in this process on 127.0.0.1; it records the
time and `webhook-id` of every request and checks every Standard Webhooks signature with
the standard library. --subscriptions global subscriptions to `incident.created` point at
it (`/hooks/<n>`), and --deliveries / --subscriptions incidents are posted as the admin
(8 at a time, uniform over the Tianjin box), so each incident makes one delivery per
subscription. The deliveries must exist before the measurement starts, so what is timed
is the sender draining a backlog, not incident intake:

- hold (the default): the receiver holds every request open until all incidents are
  posted (DISPATCH_WEBHOOK_TIMEOUT_S is raised so the held ones do not time out). Only
  the per-endpoint cap (DISPATCH_WEBHOOK_CONCURRENCY_PER_ENDPOINT) can be in flight then,
  which is printed. Then it answers 200 to everything; the rate is deliveries from the
  first 200 to the last.
- retry: the receiver answers 503 to the first attempt of every webhook-id and 200 to
  later ones, so deliveries come back on the first retry (5 s ±10 % after each failure).
  Those retries come due at about the pace the first attempts were made, so this rate is
  bounded by that pace rather than by the sender alone; the bench says whether the sender
  fell behind.

It checks that every delivery arrived once (no duplicate webhook-id among the 200s,
bounded wait), prints the server's dispatch_webhook_attempts_total, the deliveries' final
state and the sender's own per-attempt latency (webhook_attempts.latency_ms).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import contextlib
import hashlib
import hmac
import json
import math
import random
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx

from app.settings import Settings
from bench.common import (
    Server,
    admin_client,
    machine_line,
    metrics,
    percentile,
    pg_dsn,
    random_point,
    running_server,
)

EVENT_TYPE = "incident.created"
OVERALL_CAP = 64  # WebhookSender._overall: attempts in flight across all endpoints
FIRST_RETRY_S = (4.5, 5.5)  # RETRY_DELAYS_S[0] = 5 s, ±10 % jitter
ATTEMPTS = "dispatch_webhook_attempts_total"


def default(name: str) -> Any:
    return Settings.model_fields[name].default


# The receiver ---------------------------------------------------------------------------


@dataclass
class Hit:
    path: str
    webhook_id: str
    headers: dict[str, str]
    body: bytes
    arrived_ns: int
    answered_ns: int = 0
    status: int = 0
    held: bool = False


@dataclass
class Receiver:
    """HTTP/1.1 on 127.0.0.1 with keep-alive; answers every POST by `mode`:
    'hold' (wait for `release()`, then 200), 'retry' (503 to a webhook-id's first attempt,
    200 after), 'ok' (200)."""

    mode: str
    hits: list[Hit] = field(default_factory=list)
    in_flight: collections.Counter[str] = field(default_factory=collections.Counter)
    max_in_flight: collections.Counter[str] = field(default_factory=collections.Counter)
    malformed: int = 0
    port: int = 0
    _gate: asyncio.Event = field(default_factory=asyncio.Event)
    _seen: set[str] = field(default_factory=set)
    _server: asyncio.Server | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)
    _handlers: set[asyncio.Task[Any]] = field(default_factory=set)
    _ok_ids: set[str] = field(default_factory=set)
    _progress: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, n: int) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/{n}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", 0, backlog=512)
        self.port = int(self._server.sockets[0].getsockname()[1])

    def release(self) -> int:
        """Stop holding: held requests (and later ones) get 200; the perf_counter_ns now."""
        self.mode = "ok"
        now = time.perf_counter_ns()
        self._gate.set()
        return now

    @property
    def held(self) -> int:
        return sum(self.in_flight.values())

    @property
    def delivered(self) -> int:
        return len(self._ok_ids)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.add(writer)
        try:
            while True:
                request_line = await reader.readline()
                if not request_line:
                    return
                headers: dict[str, str] = {}
                while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                parts = request_line.decode("latin-1").split()
                if len(parts) != 3 or parts[0] != "POST" or "webhook-id" not in headers:
                    self.malformed += 1
                    await self._answer(writer, 400)
                    continue
                await self._hook(
                    writer,
                    Hit(parts[1], headers["webhook-id"], headers, body, time.perf_counter_ns()),
                )
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
            self._handlers.discard(task)

    async def _hook(self, writer: asyncio.StreamWriter, hit: Hit) -> None:
        self.hits.append(hit)
        if self.mode == "hold":
            hit.held = True
            self.in_flight[hit.path] += 1
            self.max_in_flight[hit.path] = max(
                self.max_in_flight[hit.path], self.in_flight[hit.path]
            )
            try:
                await self._gate.wait()
            finally:
                self.in_flight[hit.path] -= 1
        if self.mode == "retry" and hit.webhook_id not in self._seen:
            hit.status = 503
        else:
            hit.status = 200
        self._seen.add(hit.webhook_id)
        await self._answer(writer, hit.status)
        hit.answered_ns = time.perf_counter_ns()
        if hit.status == 200:
            self._ok_ids.add(hit.webhook_id)
            self._progress.set()

    @staticmethod
    async def _answer(writer: asyncio.StreamWriter, status: int) -> None:
        reason = {200: "OK", 400: "Bad Request", 503: "Service Unavailable"}[status]
        body = reason.encode()
        writer.write(
            f"HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain\r\n"
            f"content-length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()

    async def wait_delivered(self, count: int, timeout_s: float) -> bool:
        """Until `count` distinct webhook-ids got a 200, at most timeout_s; whether they did."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                while self.delivered < count:
                    self._progress.clear()
                    await self._progress.wait()
        return self.delivered >= count

    async def close(self) -> None:
        self._gate.set()
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        for task in list(self._handlers):
            task.cancel()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                await asyncio.gather(*self._handlers, return_exceptions=True)
                if self._server is not None:
                    await self._server.wait_closed()


def signature_ok(secret: str, hit: Hit) -> bool:
    """Standard Webhooks verification with the standard library (as the README shows)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{hit.webhook_id}.{hit.headers.get('webhook-timestamp', '')}.".encode() + hit.body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(
        hmac.compare_digest(expected, candidate.split(",", 1)[1])
        for candidate in hit.headers.get("webhook-signature", "").split()
        if candidate.startswith("v1,")
    )


# The run --------------------------------------------------------------------------------


async def subscribe(client: httpx.AsyncClient, receiver: Receiver, count: int) -> dict[str, str]:
    """`count` global subscriptions to incident.created; {receiver path: secret}."""
    secrets = {}
    for n in range(count):
        response = await client.post(
            "/api/v1/webhooks",
            json={"url": receiver.url(n), "event_types": [EVENT_TYPE], "station_id": None},
        )
        if response.status_code != 201:
            raise RuntimeError(f"POST /webhooks: {response.status_code} {response.text}")
        secrets[f"/hooks/{n}"] = response.json()["secret"]
    return secrets


async def post_incidents(
    client: httpx.AsyncClient, count: int, concurrency: int, timeout_s: float
) -> list[str]:
    rng = random.Random(count)
    points = [random_point(rng) for _ in range(count)]
    gate = asyncio.Semaphore(concurrency)
    ids: list[str] = []

    async def one(lat: float, lon: float) -> None:
        body = {
            "category": "theft",
            "priority": 3,
            "location": {"lat": lat, "lon": lon},
            "description": "bench webhooks",
        }
        async with gate:
            response = await client.post("/api/v1/incidents", json=body)
        if response.status_code != 201:
            raise RuntimeError(f"POST /incidents: {response.status_code} {response.text}")
        ids.append(response.json()["id"])

    async with asyncio.timeout(timeout_s):
        await asyncio.gather(*(one(*p) for p in points))
    return ids


async def wait_held(receiver: Receiver, expected: int, timeout_s: float) -> None:
    """Until `expected` requests are held open (or timeout_s), then a short settle."""
    deadline = time.monotonic() + timeout_s
    while receiver.held < expected and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.5)  # anything past the cap would arrive now


async def database_view(server: Server) -> tuple[dict[tuple[str, int], int], dict[str, float]]:
    """({(status, attempts): deliveries}, {delivery id: latency_ms of its 2xx attempt})."""
    by_status = "SELECT status, attempts, count(*) FROM webhook_deliveries GROUP BY 1, 2"
    latencies = (
        "SELECT delivery_id, latency_ms FROM webhook_attempts WHERE status_code BETWEEN 200 AND 299"
    )
    if server.database_url.startswith("sqlite"):
        path = server.database_url.split("///", 1)[1]
        with contextlib.closing(sqlite3.connect(path)) as db:
            rows = db.execute(by_status).fetchall()
            lat = db.execute(latencies).fetchall()
    else:
        conn = await asyncpg.connect("/".join(pg_dsn(server.database_url)))
        try:
            rows = await conn.fetch(by_status)
            lat = await conn.fetch(latencies)
        finally:
            await conn.close()
    return {(s, a): n for s, a, n in rows}, {d: ms for d, ms in lat}


async def run(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    subscriptions = args.subscriptions
    incidents = math.ceil(args.deliveries / subscriptions)
    total = incidents * subscriptions
    per_endpoint = args.per_endpoint or default("webhook_concurrency_per_endpoint")
    # The receiver is on 127.0.0.1, which webhooks may reach only once it is opened.
    settings: dict[str, object] = {"webhook_allow_networks": "127.0.0.0/8"}
    if args.per_endpoint:
        settings["webhook_concurrency_per_endpoint"] = args.per_endpoint
    if args.batch:
        settings["webhook_batch"] = args.batch
    if args.mode == "hold":
        settings["webhook_timeout_s"] = args.timeout_s + 300
    shown = {
        "webhook_concurrency_per_endpoint": per_endpoint,
        "webhook_batch": args.batch or default("webhook_batch"),
        "webhook_timeout_s": settings.get("webhook_timeout_s", default("webhook_timeout_s")),
        "webhook_allow_networks": settings["webhook_allow_networks"],
    }
    print(
        "settings: "
        + ", ".join(
            f"DISPATCH_{k.upper()}={v}{'' if k in settings else ' (default)'}"
            for k, v in shown.items()
        )
        + f"; overall cap {OVERALL_CAP} in flight (hard-coded in WebhookSender)"
    )
    receiver = Receiver("hold" if args.mode == "hold" else "retry")
    await receiver.start()
    try:
        async with running_server(args.db, **settings) as server:
            client = await admin_client(server)
            try:
                await measure(args, server, client, receiver, incidents, total, per_endpoint)
            finally:
                await client.aclose()
    finally:
        await receiver.close()
    print(f"  run time {time.perf_counter() - started:.0f} s")


async def measure(
    args: argparse.Namespace,
    server: Server,
    client: httpx.AsyncClient,
    receiver: Receiver,
    incidents: int,
    total: int,
    per_endpoint: int,
) -> None:
    subscriptions = args.subscriptions
    secrets = await subscribe(client, receiver, subscriptions)
    before = await metrics(client)
    t0 = time.perf_counter()
    incident_ids = await post_incidents(client, incidents, args.concurrency, args.timeout_s)
    create_s = time.perf_counter() - t0
    held_note = ""
    release_ns = 0
    cpu0, mark_ns = server.cpu_s(), time.perf_counter_ns()
    if args.mode == "hold":
        expected = min(OVERALL_CAP, subscriptions * min(per_endpoint, incidents))
        await wait_held(receiver, expected, 30)
        held = dict(sorted(receiver.in_flight.items()))
        held_note = (
            f"held open at release: {sum(held.values())} requests "
            f"({', '.join(f'{p}: {n}' for p, n in held.items())}; expected ≤ {per_endpoint} per "
            f"endpoint, ≤ {OVERALL_CAP} overall)"
        )
        cpu0 = server.cpu_s()
        release_ns = mark_ns = receiver.release()
    arrived = await receiver.wait_delivered(total, args.timeout_s)
    cpu = server.cpu_s() - cpu0
    deadline = time.monotonic() + 10  # the last answers are recorded just after they arrive
    while True:
        status_counts, latency_ms = await database_view(server)
        pending = sum(n for (status, _), n in status_counts.items() if status == "pending")
        if not arrived or not pending or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    after = await metrics(client)
    report(
        args,
        receiver,
        secrets,
        incident_ids,
        total,
        create_s,
        held_note,
        release_ns,
        (cpu, mark_ns),
        arrived,
        before,
        after,
        status_counts,
        latency_ms,
    )


def report(
    args: argparse.Namespace,
    receiver: Receiver,
    secrets: dict[str, str],
    incident_ids: list[str],
    total: int,
    create_s: float,
    held_note: str,
    release_ns: int,
    cpu_since: tuple[float, int],
    arrived: bool,
    before: dict[str, float],
    after: dict[str, float],
    status_counts: dict[tuple[str, int], int],
    latency_ms: dict[str, float],
) -> None:
    hits = list(receiver.hits)
    ok = sorted((h for h in hits if h.status == 200), key=lambda h: h.answered_ns)
    per_id = collections.Counter(h.webhook_id for h in ok)
    duplicates = sum(n - 1 for n in per_id.values() if n > 1)
    pairs: collections.Counter[tuple[str, str]] = collections.Counter()
    bad_payload = 0
    for h in ok:
        try:
            payload = json.loads(h.body)
            pairs[(h.path, payload["data"]["incident_id"])] += 1
            bad_payload += payload["type"] != EVENT_TYPE
        except (ValueError, KeyError, TypeError):
            bad_payload += 1
    expected_pairs = {(p, i) for p in secrets for i in incident_ids}
    missing = len(expected_pairs - set(pairs))
    unexpected = len(set(pairs) - expected_pairs)
    bad_signatures = sum(not signature_ok(secrets.get(h.path, ""), h) for h in hits)
    now_s = time.time()
    stale = sum(abs(now_s - timestamp(h)) > 300 for h in hits)

    print(
        f"\nwebhook deliveries, {args.db}, mode {args.mode}: {len(secrets)} global subscriptions "
        f"to {EVENT_TYPE} → {len(incident_ids)} incidents → {total} deliveries "
        f"(incidents posted {args.concurrency} at a time in {create_s:.1f} s, "
        f"{len(incident_ids) / create_s:.0f}/s)"
    )
    if held_note:
        print(f"  {held_note}")
    cpu, mark_ns = cpu_since
    attempts = sum(h.answered_ns >= mark_ns for h in hits)
    cpu_span = (
        "from release to the last 200" if release_ns else "from the last POST to the last 200"
    )
    if len(ok) >= 2:
        first, last = ok[0].answered_ns, ok[-1].answered_ns
        span = (last - first) / 1e9
        rate = (len(ok) - 1) / span if span > 0 else math.nan
        since = (
            f", {len(ok) / ((last - release_ns) / 1e9):,.0f}/s from release" if release_ns else ""
        )
        print(
            f"  delivered/s (receiver, first 200 → last 200): {rate:,.0f}  "
            f"({len(ok)} in {span:.2f} s{since})"
        )
        print(f"  {per_second(ok)}")
        print(
            f"  server CPU {cpu:.2f} s {cpu_span}, {attempts} attempts answered in that "
            f"time → {attempts / max(cpu, 1e-9):,.0f} attempts per server CPU-second"
        )
    else:
        rate = math.nan
        print(f"  only {len(ok)} deliveries got a 200: no rate")
    if args.mode == "retry":
        print(f"  {retry_lag(hits)}")
    held_ids = {h.webhook_id for h in hits if h.held}
    ours = sorted(ms for d, ms in latency_ms.items() if d not in held_ids)
    if ours:
        print(
            f"  sender's per-attempt latency (webhook_attempts.latency_ms of the 200s"
            f"{', not counting the held ones' if held_note else ''}): "
            f"p50 {percentile(ours, 50):.2f} ms  p99 {percentile(ours, 99):.2f} ms  "
            f"max {ours[-1]:.2f} ms"
        )
    counters = {
        k.split('"')[1]: v - before.get(k, 0.0)
        for k, v in after.items()
        if k.startswith(ATTEMPTS + "{") and v != before.get(k, 0.0)
    }
    print(f"  server {ATTEMPTS} by outcome during the run: {counters or 'none'}")
    states = ", ".join(
        f"{s} after {a} attempt(s): {n}" for (s, a), n in sorted(status_counts.items())
    )
    print(f"  webhook_deliveries at the end: {states or 'none'}")
    print(
        f"  receiver: {len(hits)} requests, {len(ok)} answered 200 "
        f"({len(per_id)} distinct webhook-ids), duplicate 200s {duplicates}, "
        f"missing after {args.timeout_s:.0f} s {missing}, unexpected {unexpected}, "
        f"bad signatures {bad_signatures}, timestamps > 5 min off {stale}, "
        f"bad payloads {bad_payload}, malformed requests {receiver.malformed}"
    )
    sound = arrived and not (
        duplicates
        or missing
        or unexpected
        or bad_signatures
        or stale
        or bad_payload
        or receiver.malformed
    )
    cap = args.per_endpoint or default("webhook_concurrency_per_endpoint")
    print(
        f"  summary: {args.db} {args.mode}: {rate:,.0f} webhook deliveries/s from one worker, "
        f"{len(secrets)} endpoints × {cap} in flight; "
        f"{'all delivered once, all signatures valid' if sound else 'CHECKS FAILED'}"
    )


def timestamp(hit: Hit) -> float:
    try:
        return float(hit.headers.get("webhook-timestamp", ""))
    except ValueError:
        return 0.0


def per_second(ok: list[Hit]) -> str:
    """Deliveries in each whole second after the first 200 (the last, partial one left out)."""
    start = ok[0].answered_ns
    buckets = collections.Counter((h.answered_ns - start) // 1_000_000_000 for h in ok)
    full = [buckets.get(s, 0) for s in range(int(max(buckets)))]
    if not full:
        return "per 1 s window: (under a second)"
    return f"per 1 s window: min {min(full)}, max {max(full)} over {len(full)} full seconds"


def retry_lag(hits: list[Hit]) -> str:
    """How long after it came due (at the latest) each retry was answered."""
    first: dict[str, int] = {}
    for h in hits:
        if h.status == 503:
            first.setdefault(h.webhook_id, h.answered_ns)
    lags = sorted(
        (h.answered_ns - first[h.webhook_id]) / 1e9 - FIRST_RETRY_S[1]
        for h in hits
        if h.status == 200 and h.webhook_id in first
    )
    if not lags or not first:
        return "retry lag: no retries"
    spread = (max(first.values()) - min(first.values())) / 1e9
    behind = sum(lag > 0 for lag in lags)
    return (
        f"first attempts (503) spread over {spread:.1f} s; a retry is due ≤ "
        f"{FIRST_RETRY_S[1]} s after its failure: answered after that in {behind}/{len(lags)} "
        f"cases (max {lags[-1]:+.2f} s) — "
        + (
            "the sender fell behind, so this rate is the sender's"
            if behind > len(lags) // 2
            else "the sender kept up, so this rate is the pace retries came due, not its capacity"
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument(
        "--deliveries",
        type=int,
        default=1000,
        help="total deliveries (rounded up to a multiple of --subscriptions)",
    )
    parser.add_argument(
        "--subscriptions",
        type=int,
        default=4,
        help="global subscriptions (endpoints), each with its own cap",
    )
    parser.add_argument("--mode", choices=["hold", "retry"], default="hold")
    parser.add_argument("--concurrency", type=int, default=8, help="incident POSTs at a time")
    parser.add_argument(
        "--per-endpoint",
        type=int,
        default=None,
        help="DISPATCH_WEBHOOK_CONCURRENCY_PER_ENDPOINT (default: the service's)",
    )
    parser.add_argument(
        "--batch", type=int, default=None, help="DISPATCH_WEBHOOK_BATCH (default: the service's)"
    )
    parser.add_argument(
        "--timeout-s",
        type=float,
        default=120.0,
        help="bound on posting incidents and on waiting for the deliveries",
    )
    args = parser.parse_args()
    if args.deliveries < 1 or args.subscriptions < 1:
        parser.error("--deliveries and --subscriptions must be ≥ 1")
    print(machine_line())
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
