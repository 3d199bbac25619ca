"""Guards on several replicas, incidents at a steady rate: POST → offer, errors, CPU, memory.

    .venv/bin/python -m bench.load_replicas [--replicas 2] [--guards 20000] [--rate 20]
                                            [--seconds 300] [--procs 4]

N replicas (`python -m app serve` processes) share one fresh PostgreSQL database. The
guards are real websocket clients in --procs load processes, load process p connected to
replica p mod N; they go on duty and ping every ~10 s (±20 %), and answer their offers as
phones do: after 0.5–4 s they accept (--accept-share) or decline, and an accepted
assignment goes on scene after 3–10 s and is cleared 5–20 s later, so incidents run
their whole course and guards come free again. This process posts --rate incidents a
second (DESIGN §5 body, random points in the 40 km box, priorities 1–4), incident k to
replica k mod N, as the admin. t0 is time.time() just before the request is written; the
guard's process stamps each offer frame with time.time() when it is read (one machine,
one clock). POST → offer is the first offer of each incident at any guard, reported all
together and for the offers that crossed replicas (posted to one, guard on another).
Per replica: CPU seconds and % of a core over the posting window and RSS (from /proc).
Goal (issue 13): 20,000 guards across 2 replicas, 20 incidents/s for 5 minutes, figures
in the README (no threshold).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import multiprocessing
import os
import random
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import asyncpg
import httpx
from websockets.exceptions import ConnectionClosed, InvalidStatus

from bench.common import (
    GuardPhone,
    GuardSpec,
    PostgresCpu,
    RawHttp,
    Seeded,
    Server,
    admin_client,
    admin_token,
    connect_phones,
    expect_message,
    keep_pinging,
    machine_line,
    metrics,
    percentile,
    pg_dsn,
    process_cpu_s,
    raise_nofile,
    random_point,
    running_replicas,
    seed_guards,
)

RETRIED = ("database_unavailable", "internal_error")  # error frames a phone retries duty on
OFFER_WAIT_S = 10.0  # an incident with no offer this long after its 201 counts as missing
# (category, priority, weight): most calls are medium; priority 1 needs two guards and
# escalates to the police at once.
MIX = [("robbery", 1, 1), ("medical", 2, 2), ("theft", 3, 5), ("disturbance", 4, 2)]


def incident_body(rng: random.Random, priority: int | None = None) -> bytes:
    """A DESIGN §5 incident at a random point of the box: of `priority`, else from MIX."""
    mix = [row for row in MIX if priority in (None, row[1])]
    category, priority, _ = rng.choices(mix, weights=[w for *_, w in mix])[0]
    lat, lon = random_point(rng)
    return json.dumps(
        {
            "category": category,
            "priority": priority,
            "location": {"lat": lat, "lon": lon},
            "address": "bench",
            "description": "bench load",
        }
    ).encode()


# Guards' phones (load processes) ---------------------------------------------------------


class AnsweringPhone(GuardPhone):
    """A guard phone that answers offers and works its assignments, as a person would.

    Offers are stamped with time.time() on arrival (comparable across processes).
    """

    def __init__(
        self, seeded: Seeded, lat: float, lon: float, log: FleetLog, accept_share: float
    ) -> None:
        super().__init__(seeded, lat, lon, compression=None)
        self.log = log
        self.accept_share = accept_share
        self.withdrawn_ids: set[str] = set()
        self.assignments: set[str] = set()
        self.stopping = False

    async def connect(self, ws_url: str) -> None:
        """Connect and say hello, as a phone would: a failed attempt is retried (up to 5
        times, 1–3 s apart) and counted."""
        for attempt in range(6):
            try:
                await super().connect(ws_url)
                return
            except (OSError, TimeoutError, ConnectionClosed, InvalidStatus) as exc:
                if attempt == 5:
                    raise
                self.log.errors[f"connect failed, retried: {type(exc).__name__}"] += 1
                if self.ws is not None:
                    await self.ws.close()
                await asyncio.sleep(random.uniform(1.0, 3.0))

    async def on_duty(self) -> None:
        """Duty on, as a phone would: an error answer (`database_unavailable`, or
        `internal_error`) is retried (up to 5 times, 1–3 s apart) and counted."""
        for attempt in range(6):
            try:
                await super().on_duty()
                return
            except RuntimeError as exc:
                code = next((c for c in RETRIED if c in str(exc)), None)
                if code is None or attempt == 5:
                    raise
                self.log.errors[f"duty answered {code}, retried"] += 1
                await asyncio.sleep(random.uniform(1.0, 3.0))

    async def _read(self) -> None:
        assert self.ws is not None
        try:
            async for raw in self.ws:
                arrived = time.time()
                frame = json.loads(raw)
                kind = frame.get("type")
                if "seq" in frame:
                    await self.ws.send(f'{{"type":"ack","seq":{int(frame["seq"])}}}')
                self.log.frames[kind] += 1
                if kind == "offer":
                    self.log.offers.append((frame["incident"]["id"], arrived))
                    self.log.spawn(self._answer(frame["offer_id"]))
                elif kind == "offer.withdrawn":
                    self.withdrawn_ids.add(frame["offer_id"])
                    self.log.frames[f"offer.withdrawn:{frame.get('reason')}"] += 1
                elif kind == "assignment":
                    if frame["assignment_id"] not in self.assignments:
                        self.assignments.add(frame["assignment_id"])
                        self.log.spawn(self._work(frame["assignment_id"]))
                elif kind == "error":
                    self.log.errors[frame.get("code", "?")] += 1
        except ConnectionClosed:
            pass
        if not self.stopping:
            self.log.errors["socket closed by the server"] += 1

    async def _answer(self, offer_id: str) -> None:
        await asyncio.sleep(random.uniform(0.5, 4.0))
        if offer_id in self.withdrawn_ids or self.ws is None:
            self.log.frames["withdrawn before answering"] += 1
            return
        with contextlib.suppress(ConnectionClosed):
            if random.random() < self.accept_share:
                await self.ws.send(f'{{"type":"offer.accept","offer_id":"{offer_id}"}}')
                self.log.sent["offer.accept"] += 1
            else:
                await self.ws.send(
                    f'{{"type":"offer.decline","offer_id":"{offer_id}","reason":"busy"}}'
                )
                self.log.sent["offer.decline"] += 1

    async def _work(self, assignment_id: str) -> None:
        assert self.ws is not None
        with contextlib.suppress(ConnectionClosed):
            for status, wait_s in (("on_scene", (3.0, 10.0)), ("cleared", (5.0, 20.0))):
                await asyncio.sleep(random.uniform(*wait_s))
                await self.ws.send(
                    f'{{"type":"assignment.status","assignment_id":"{assignment_id}",'
                    f'"status":"{status}"}}'
                )
                self.log.sent[f"assignment.{status}"] += 1


@dataclass
class FleetLog:
    """What one load process saw: offers (incident id, time.time()), frames, errors."""

    offers: list[tuple[str, float]]
    frames: collections.Counter[str]
    sent: collections.Counter[str]
    errors: collections.Counter[str]
    tasks: set[asyncio.Task[None]]

    @classmethod
    def empty(cls) -> FleetLog:
        return cls([], collections.Counter(), collections.Counter(), collections.Counter(), set())

    def spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


def fleet_main(
    ws_url: str,
    replica: int,
    guards: list[GuardSpec],
    interval_s: float,
    accept_share: float,
    connecting: int,
    conn: Connection,
) -> None:
    """Load process: keep `guards` connected to one replica, on duty, pinging, answering."""
    try:
        asyncio.run(_fleet(ws_url, replica, guards, interval_s, accept_share, connecting, conn))
    except BaseException:
        conn.send(("error", traceback.format_exc()))


async def _fleet(
    ws_url: str,
    replica: int,
    guards: list[GuardSpec],
    interval_s: float,
    accept_share: float,
    connecting: int,
    conn: Connection,
) -> None:
    raise_nofile(len(guards) + 1000)
    log = FleetLog.empty()
    phones = [
        AnsweringPhone(Seeded(g, t), lat, lon, log, accept_share) for g, t, lat, lon in guards
    ]
    await connect_phones(phones, ws_url, duty=True, concurrency=connecting)
    pingers = [asyncio.create_task(keep_pinging(p, interval_s)) for p in phones]
    conn.send(("ready", len(phones)))
    await asyncio.to_thread(conn.recv)
    for phone in phones:
        phone.stopping = True
    for task in [*pingers, *log.tasks]:
        task.cancel()
    await asyncio.gather(*(p.close() for p in phones))
    conn.send(
        (
            "done",
            {
                "replica": replica,
                "offers": log.offers,
                "frames": dict(log.frames),
                "sent": dict(log.sent),
                "errors": dict(log.errors),
            },
        )
    )


@dataclass
class Fleets:
    pids: list[int]
    stop: Callable[[], Awaitable[list[dict[str, Any]]]]


@contextlib.asynccontextmanager
async def answering_fleets(
    servers: Sequence[Server],
    specs: list[GuardSpec],
    procs: int,
    interval_s: float,
    accept_share: float,
    connecting: int = 16,
    ready_timeout_s: float = 900,
) -> AsyncIterator[Fleets]:
    """`procs` load processes, process p holding specs[p::procs] on replica p mod N, all
    connected, on duty and pinging when entered; `stop()` ends them and returns what each
    saw (its replica index, offers, frames, errors)."""
    spawn = multiprocessing.get_context("spawn")
    links: list[Connection] = []
    fleets = []
    for p in range(procs):
        parent, child = spawn.Pipe()
        replica = p % len(servers)
        fleet = spawn.Process(
            target=fleet_main,
            args=(
                servers[replica].ws_url,
                replica,
                specs[p::procs],
                interval_s,
                accept_share,
                connecting,
                child,
            ),
            daemon=True,
        )
        fleet.start()
        links.append(parent)
        fleets.append(fleet)

    async def stop() -> list[dict[str, Any]]:
        for link in links:
            link.send("stop")
        return [await expect_message(link, "done", 120) for link in links]

    try:
        for link in links:
            await expect_message(link, "ready", ready_timeout_s)
        yield Fleets([f.pid for f in fleets if f.pid is not None], stop)
    finally:
        for fleet in fleets:
            fleet.join(10)
            if fleet.is_alive():
                fleet.kill()


# Incidents (this process) -----------------------------------------------------------------


@dataclass
class Posted:
    replica: int
    t0: float  # time.time() just before the request was written
    due: float  # time.time() it was scheduled for
    created_s: float  # POST → response, seconds
    status: int | str
    incident_id: str | None


async def post_at_rate(
    servers: Sequence[Server], token: str, rate: float, seconds: float, rng: random.Random
) -> list[Posted]:
    """`rate` incidents a second for `seconds`, incident k to replica k mod N; each on its
    own keep-alive connection from a per-replica pool, so one slow answer delays no other."""
    pools: list[list[RawHttp]] = [[] for _ in servers]
    posted: list[Posted] = []
    tasks: set[asyncio.Task[None]] = set()

    async def one(k: int, due: float) -> None:
        replica = k % len(servers)
        pool = pools[replica]
        http = pool.pop() if pool else RawHttp("127.0.0.1", servers[replica].port, token)
        body = incident_body(rng)
        t0 = time.time()
        incident_id = None
        try:
            async with asyncio.timeout(30):
                status, payload = await http.post("/api/v1/incidents", body)
            if status == 201:
                incident_id = json.loads(payload)["id"]
            pool.append(http)
        except TimeoutError:
            status = "timeout"
            await http.close()
        except (OSError, asyncio.IncompleteReadError) as exc:
            status = type(exc).__name__
        posted.append(Posted(replica, t0, due, time.time() - t0, status, incident_id))

    start = time.time() + 0.1
    total = round(rate * seconds)
    for k in range(total):
        due = start + k / rate
        await asyncio.sleep(max(0.0, due - time.time()))
        task = asyncio.create_task(one(k, due))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(tasks, timeout=40)
    for pool in pools:
        for http in pool:
            await http.close()
    return posted


# The run ----------------------------------------------------------------------------------


@dataclass
class ReplicaSample:
    cpu0: float
    rss_max_kib: int = 0


async def sample_rss(servers: Sequence[Server], samples: list[ReplicaSample]) -> None:
    """Keep each replica's largest VmRSS seen, every 2 s, until cancelled."""
    while True:
        for server, sample in zip(servers, samples, strict=True):
            with contextlib.suppress(OSError, RuntimeError):
                sample.rss_max_kib = max(sample.rss_max_kib, server.rss_kib())
        await asyncio.sleep(2.0)


async def run(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    # Each replica holds its share of the guards' sockets; children inherit the limit.
    raise_nofile(args.guards + 2000)
    async with running_replicas("postgres", args.replicas) as servers:
        try:
            figures = await measure(args, servers, started)
        except BaseException:
            for i, server in enumerate(servers):
                print(f"replica {i} log tail:\n{server.log_tail(40)}")
            raise
    report(args, figures)
    print(f"  run time {time.perf_counter() - started:.0f} s")


async def measure(args: argparse.Namespace, servers: list[Server], started: float) -> Figures:
    """Seed, connect the fleets, post at the rate: the figures report() prints."""
    seeded = await asyncio.to_thread(seed_guards, servers[0], args.guards)
    seeded_s = time.perf_counter() - started
    rng = random.Random(args.guards)
    specs = [(s.guard_id, s.token, *random_point(rng)) for s in seeded]
    async with answering_fleets(
        servers, specs, args.procs, args.ping_interval_s, args.accept_share, args.connecting
    ) as fleets:
        connected_s = time.perf_counter() - started - seeded_s
        # One ping interval plus the replicas' sync: every guard is in every live index.
        await asyncio.sleep(args.ping_interval_s * 1.2 + 2.0)
        before = [await replica_metrics(server) for server in servers]
        token = await admin_token(servers[0])
        samples = [ReplicaSample(server.cpu_s()) for server in servers]
        fleet_cpu0 = sum(process_cpu_s(pid) for pid in fleets.pids)
        pg_cpu0, wall0 = PostgresCpu(), time.perf_counter()
        load0 = os.getloadavg()[0]
        sampler = asyncio.create_task(sample_rss(servers, samples))
        posted = await post_at_rate(
            servers, token, args.rate, args.seconds, random.Random(args.seed)
        )
        wall = time.perf_counter() - wall0
        figures = Figures(
            posted=posted,
            wall=wall,
            cpu=[s.cpu_s() - sample.cpu0 for s, sample in zip(servers, samples, strict=True)],
            samples=samples,
            rss_end=[server.rss_kib() for server in servers],
            fleet_cpu=sum(process_cpu_s(pid) for pid in fleets.pids) - fleet_cpu0,
            pg_cpu=pg_cpu0.used_s(),
            load=(load0, os.getloadavg()[0]),
            before=before,
            seeded_s=seeded_s,
            connected_s=connected_s,
        )
        await asyncio.sleep(OFFER_WAIT_S)  # offers for the last incidents
        sampler.cancel()
        figures.after = [await replica_metrics(server) for server in servers]
        figures.seen = await fleets.stop()
    figures.states = await incident_states(servers[0].database_url)
    figures.logs = [server.log_tail(5) for server in servers]
    return figures


@dataclass
class Figures:
    posted: list[Posted]
    wall: float
    cpu: list[float]  # CPU seconds per replica over the posting window
    samples: list[ReplicaSample]
    rss_end: list[int]
    fleet_cpu: float
    pg_cpu: float
    load: tuple[float, float]
    before: list[dict[str, float]]
    seeded_s: float
    connected_s: float
    after: list[dict[str, float]] = field(default_factory=list)
    seen: list[dict[str, Any]] = field(default_factory=list)
    states: dict[str, dict[str, int]] = field(default_factory=dict)
    logs: list[str] = field(default_factory=list)


async def replica_metrics(server: Server) -> dict[str, float]:
    client = await admin_client(server)
    try:
        return await metrics(client)
    except httpx.HTTPError as exc:
        print(f"  (metrics of {server.base_url}: {exc})")
        return {}
    finally:
        await client.aclose()


async def incident_states(database_url: str) -> dict[str, dict[str, int]]:
    """Incidents by status and offers by status, read from the database at the end."""
    dsn, name = pg_dsn(database_url)
    conn = await asyncpg.connect(f"{dsn}/{name}")
    try:
        out = {}
        for table, column in (
            ("incidents", "status"),
            ("offers", "coalesce(outcome, 'open')"),
            ("assignments", "status"),
        ):
            rows = await conn.fetch(f"SELECT {column}, count(*) FROM {table} GROUP BY 1")
            out[table] = {row[0]: row[1] for row in rows}
        return out
    finally:
        await conn.close()


def latency_line(values_s: list[float]) -> str:
    values = sorted(v * 1000 for v in values_s)
    if not values:
        return "none"
    return (
        f"p50 {percentile(values, 50):.1f} ms   p90 {percentile(values, 90):.1f} ms   "
        f"p99 {percentile(values, 99):.1f} ms   max {values[-1]:.1f} ms   ({len(values)})"
    )


def report(args: argparse.Namespace, f: Figures) -> None:
    first: dict[str, tuple[float, int]] = {}  # incident id → (first offer time, guard replica)
    for fleet in f.seen:
        for incident_id, arrived in fleet["offers"]:
            if incident_id not in first or arrived < first[incident_id][0]:
                first[incident_id] = (arrived, fleet["replica"])
    created = [p for p in f.posted if p.status == 201]
    to_offer, crossed, same, missing = [], [], [], 0
    for p in created:
        assert p.incident_id is not None
        if p.incident_id not in first:
            missing += 1
            continue
        arrived, guard_replica = first[p.incident_id]
        to_offer.append(arrived - p.t0)
        (crossed if guard_replica != p.replica else same).append(arrived - p.t0)
    statuses = collections.Counter(str(p.status) for p in f.posted if p.status != 201)
    late = sorted(p.t0 - p.due for p in f.posted)
    frames: collections.Counter[str] = collections.Counter()
    sent: collections.Counter[str] = collections.Counter()
    errors: collections.Counter[str] = collections.Counter()
    for fleet in f.seen:
        frames.update(fleet["frames"])
        sent.update(fleet["sent"])
        errors.update(fleet["errors"])
    print(
        f"\nload across replicas, postgres, {args.replicas} replica(s), {args.guards} guards "
        f"({args.procs} load processes, ping every {args.ping_interval_s:.0f} s ±20 %), "
        f"{args.rate:g} incidents/s for {args.seconds:.0f} s; setup: seeding "
        f"{f.seeded_s:.0f} s, connecting {f.connected_s:.0f} s; load average "
        f"{f.load[0]:.1f} before posting, {f.load[1]:.1f} after"
    )
    print(
        f"  incidents posted {len(f.posted)} in {f.wall:.0f} s, 201 {len(created)}, "
        f"errors {dict(statuses) or 'none'}; start lateness p99 "
        f"{percentile(late, 99) * 1000:.1f} ms"
    )
    print(f"  POST → 201:                  {latency_line([p.created_s for p in created])}")
    print(f"  POST → first offer, all:     {latency_line(to_offer)}")
    print(f"    guard on another replica:  {latency_line(crossed)}")
    print(f"    guard on the same replica: {latency_line(same)}")
    print(f"  incidents with no offer within {OFFER_WAIT_S:.0f} s of the end: {missing}")
    print(f"  frames at the guards: {dict(sorted(frames.items()))}")
    print(f"  sent by the guards: {dict(sorted(sent.items()))}")
    print(f"  errors at the guards: {dict(errors) or 'none'}")
    print(f"  database at the end: {f.states}")
    ok = 'dispatch_location_pings_total{outcome="ok"}'
    print(
        "  replica | guard sockets | indexed guards | pings ok | CPU s | CPU % of a core "
        "| RSS end MiB | RSS max MiB"
    )
    for i, cpu in enumerate(f.cpu):
        after, before = f.after[i], f.before[i]
        print(
            f"  r{i}      | {after.get('dispatch_guard_connections', 0):13.0f} "
            f"| {after.get('dispatch_indexed_guards', 0):14.0f} "
            f"| {after.get(ok, 0) - before.get(ok, 0):8.0f} "
            f"| {cpu:5.0f} | {cpu / f.wall * 100:15.0f} "
            f"| {f.rss_end[i] / 1024:11.0f} | {f.samples[i].rss_max_kib / 1024:11.0f}"
        )
    print(
        f"  PostgreSQL (all its processes) {f.pg_cpu:.0f} CPU s = "
        f"{f.pg_cpu / f.wall * 100:.0f} % of a core; load processes {f.fleet_cpu:.0f} CPU s = "
        f"{f.fleet_cpu / f.wall * 100:.0f} %"
    )
    print("  replica log tails (warnings and errors only):")
    for i, tail in enumerate(f.logs):
        print(f"    r{i}: {tail.strip() or '(empty)'}".replace("\n", "\n        "))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--guards", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=20.0, help="incidents per second")
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--procs", type=int, default=4, help="guards' load processes")
    parser.add_argument("--ping-interval-s", type=float, default=10.0)
    parser.add_argument("--accept-share", type=float, default=0.6)
    parser.add_argument(
        "--connecting", type=int, default=16, help="guards connecting at once per load process"
    )
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    if args.procs < args.replicas:
        parser.error("--procs must be at least --replicas (each replica gets guards)")
    print(machine_line())
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
