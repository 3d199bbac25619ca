"""Incident POST → first `offer` frame at the nearest guard's websocket, with N guards online.

    .venv/bin/python -m bench.dispatch_latency --db sqlite|postgres [--guards 1000 5000]
                                               [--replicas 2]

The server runs as its own process on a fresh database. N guards are spread uniformly
over a 40 km × 40 km box around Tianjin, connected as real websocket clients, on duty,
pinging every 5 s (with jitter, a few metres each time): the measured ("chosen") guards
in this process, the others in a spawned load process. Each iteration posts an incident
20 m from the next chosen guard; t0 is taken just before the POST, t1 when that guard's
socket receives the offer for that incident; then the incident is cancelled and the
guard's `offer.withdrawn` awaited. Goal (issue 9): p99 ≤ 10 ms at 5,000 guards.

With --replicas 2 (PostgreSQL), two servers share the database: every guard is connected
to the first, every incident is posted to (and cancelled on) the second, so each offer
crosses replicas (issue 13: still ≤ 10 ms at 5,000 guards).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import math
import multiprocessing
import random
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from multiprocessing.connection import Connection

import httpx

from bench.common import (
    GuardPhone,
    GuardSpec,
    Seeded,
    Server,
    admin_client,
    compression_flag,
    compression_of,
    connect_phones,
    expect_message,
    keep_pinging,
    machine_line,
    metrics,
    offset,
    percentile,
    raise_nofile,
    random_point,
    running_replicas,
    seed_guards,
)

WARMUP = 10  # incidents before the measured ones


def fleet_main(
    ws_url: str,
    guards: list[GuardSpec],
    interval_s: float,
    compression: str | None,
    conn: Connection,
) -> None:
    """Load process: keep `guards` connected, on duty and pinging until told to stop."""
    try:
        asyncio.run(_fleet(ws_url, guards, interval_s, compression, conn))
    except BaseException:
        conn.send(("error", traceback.format_exc()))


async def _fleet(
    ws_url: str,
    guards: list[GuardSpec],
    interval_s: float,
    compression: str | None,
    conn: Connection,
) -> None:
    raise_nofile(len(guards) + 1000)
    phones = [GuardPhone(Seeded(g, t), lat, lon, compression) for g, t, lat, lon in guards]
    await connect_phones(phones, ws_url, duty=True)
    pingers = [asyncio.create_task(keep_pinging(p, interval_s)) for p in phones]
    conn.send(("ready", len(phones)))
    await asyncio.to_thread(conn.recv)
    errors: collections.Counter[str] = collections.Counter()
    for phone in phones:
        errors.update(phone.errors)
    for task in pingers:
        task.cancel()
    await asyncio.gather(*(p.close() for p in phones))
    conn.send(("done", dict(errors)))


@contextlib.asynccontextmanager
async def pinging_fleets(
    ws_url: str, specs: list[GuardSpec], procs: int, interval_s: float
) -> AsyncIterator[Callable[[], Awaitable[dict[str, int]]]]:
    """`procs` load processes keeping `specs` connected, on duty and pinging, ready when
    entered; yields `stop()`, which ends them and returns the error frames they counted."""
    spawn = multiprocessing.get_context("spawn")
    links: list[Connection] = []
    fleets = []
    for p in range(procs):
        parent, child = spawn.Pipe()
        fleet = spawn.Process(
            target=fleet_main, args=(ws_url, specs[p::procs], interval_s, None, child), daemon=True
        )
        fleet.start()
        links.append(parent)
        fleets.append(fleet)

    async def stop() -> dict[str, int]:
        for link in links:
            link.send("stop")
        errors: collections.Counter[str] = collections.Counter()
        for link in links:
            errors.update(await expect_message(link, "done", 60))
        return dict(errors)

    try:
        for link in links:
            await expect_message(link, "ready", 600)
        yield stop
    finally:
        for fleet in fleets:
            fleet.join(10)
            if fleet.is_alive():
                fleet.kill()


async def measure(
    client: httpx.AsyncClient, chosen: list[GuardPhone], incidents: int, pause_s: float
) -> tuple[list[float], list[float], int]:
    """(offer latencies ms, 201 latencies ms, misses) over `incidents` sequential incidents."""
    latencies, created, misses = [], [], 0
    for i in range(incidents):
        phone = chosen[i % len(chosen)]
        lat, lon = offset(phone.lat, phone.lon, east_m=20.0)
        body = {
            "category": "theft",
            "priority": 3,
            "location": {"lat": lat, "lon": lon},
            "description": "bench",
        }
        t0 = time.perf_counter_ns()
        response = await client.post("/api/v1/incidents", json=body)
        created.append((time.perf_counter_ns() - t0) / 1e6)
        if response.status_code != 201:
            raise RuntimeError(f"POST /incidents: {response.status_code} {response.text}")
        incident_id = response.json()["id"]
        try:
            arrived, frame = await phone.offer_for(incident_id, timeout=5.0)
        except TimeoutError:
            misses += 1
            frame = None
        else:
            latencies.append((arrived - t0) / 1e6)
            if abs(frame["distance_m"] - 20.0) > 10:
                raise RuntimeError(f"offer at {frame['distance_m']} m, expected about 20 m")
        cancelled = await client.post(f"/api/v1/incidents/{incident_id}/cancel")
        if cancelled.status_code != 200:
            raise RuntimeError(f"cancel: {cancelled.status_code} {cancelled.text}")
        if frame is not None:
            await phone.withdrawn(frame["offer_id"], timeout=5.0)
        await asyncio.sleep(pause_s)
    return latencies, created, misses


async def run(
    db: str,
    guards: int,
    incidents: int,
    pause_s: float,
    interval_s: float,
    compression: str | None,
    replicas: int = 1,
) -> None:
    raise_nofile(2 * guards + 1000)
    started = time.perf_counter()
    async with running_replicas(db, replicas) as servers:
        # Guards on the first replica, incidents posted to the last (the same one alone).
        server, poster = servers[0], servers[-1]
        seeded = await asyncio.to_thread(seed_guards, server, guards)
        rng = random.Random(guards)
        positions = [random_point(rng) for _ in seeded]
        n_chosen = min(incidents, guards)
        chosen = [
            GuardPhone(s, *p, compression)
            for s, p in zip(seeded[:n_chosen], positions, strict=False)
        ]
        rest = [
            (s.guard_id, s.token, *p)
            for s, p in zip(seeded[n_chosen:], positions[n_chosen:], strict=True)
        ]
        spawn = multiprocessing.get_context("spawn")
        parent, child = spawn.Pipe()
        fleet = spawn.Process(
            target=fleet_main,
            args=(server.ws_url, rest, interval_s, compression, child),
            daemon=True,
        )
        fleet.start()
        pingers: list[asyncio.Task[None]] = []
        try:
            await connect_phones(chosen, server.ws_url, duty=True)
            pingers = [asyncio.create_task(keep_pinging(p, interval_s)) for p in chosen]
            await expect_message(parent, "ready", 600)
            setup_s = time.perf_counter() - started
            # Let the first pings and write-behind settle (and reach the other replica).
            await asyncio.sleep(2.0 if replicas == 1 else 5.0)
            client = await admin_client(poster)
            try:
                await report(
                    servers, client, chosen, db, guards, len(rest), incidents, pause_s, setup_s
                )
            finally:
                await client.aclose()
            parent.send("stop")
            fleet_errors = await expect_message(parent, "done", 60)
            errors = collections.Counter(fleet_errors)
            for phone in chosen:
                errors.update(phone.errors)
            print(f"  error frames received by guards: {dict(errors) or 'none'}")
        finally:
            for task in pingers:
                task.cancel()
            await asyncio.gather(*(p.close() for p in chosen))
            fleet.join(10)
            if fleet.is_alive():
                fleet.kill()
    print(f"  run time {time.perf_counter() - started:.0f} s")


async def report(
    servers: list[Server],
    client: httpx.AsyncClient,
    chosen: list[GuardPhone],
    db: str,
    guards: int,
    in_fleet: int,
    incidents: int,
    pause_s: float,
    setup_s: float,
) -> None:
    floor = []
    for _ in range(50):
        t0 = time.perf_counter_ns()
        (await client.get("/healthz")).raise_for_status()
        floor.append((time.perf_counter_ns() - t0) / 1e6)
    # Warm-up, not in the figures: the first incident pays for cold caches (compiled SQL…).
    cold, _, _ = await measure(client, chosen[::-1], WARMUP, pause_s)
    before = await metrics(client)
    cpu0, wall0 = [s.cpu_s() for s in servers], time.perf_counter()
    latencies, created, misses = await measure(client, chosen, incidents, pause_s)
    wall = time.perf_counter() - wall0
    cpus = [(s.cpu_s() - c) / wall for s, c in zip(servers, cpu0, strict=True)]
    after = await metrics(client)
    values = sorted(latencies)
    ok = 'dispatch_location_pings_total{outcome="ok"}'
    where = (
        f", {len(servers)} replicas (guards on the first, incidents posted to the last)"
        if len(servers) > 1
        else ""
    )
    print(
        f"\ndispatch latency, {db}{where}, {guards} guards ({len(chosen)} measured here, "
        f"{in_fleet} in a load process), {incidents} incidents, setup {setup_s:.0f} s"
    )
    print(
        f"  POST /incidents → offer frame: p50 {percentile(values, 50):.2f} ms   "
        f"p90 {percentile(values, 90):.2f} ms   p99 {percentile(values, 99):.2f} ms   "
        f"max {max(values, default=float('nan')):.2f} ms   ({len(values)} offers, "
        f"{misses} missing after 5 s)"
    )
    created.sort()
    print(
        f"  (warm-up, not counted: first incident {cold[0] if cold else math.nan:.1f} ms, "
        f"then median {percentile(sorted(cold[1:]), 50):.1f} ms over {len(cold[1:])})"
    )
    print(
        f"  POST /incidents → 201 response: p50 {percentile(created, 50):.2f} ms   "
        f"p99 {percentile(created, 99):.2f} ms   (HTTP floor, GET /healthz: p50 "
        f"{percentile(sorted(floor), 50):.2f} ms)"
    )
    for i, (server, cpu) in enumerate(zip(servers, cpus, strict=True)):
        name = "server" if len(servers) == 1 else f"replica {i}"
        print(
            f"  {name}: RSS {server.rss_kib() / 1024:.0f} MiB, CPU {cpu * 100:.0f} % of a core "
            "while measuring"
        )
    print(
        f"  {'server' if len(servers) == 1 else 'posting replica'}: guard connections "
        f"{after.get('dispatch_guard_connections', 0):.0f}, "
        f"indexed guards {after.get('dispatch_indexed_guards', 0):.0f}, "
        f"pings ok {after.get(ok, 0) - before.get(ok, 0):.0f} during the measurement"
    )
    print(f"  server GC pauses while measuring: {gc_pauses(before, after)}")
    verdict = "met" if percentile(values, 99) <= 10 else "NOT met"
    issue = "issue 9" if len(servers) == 1 else "across replicas, issue 13"
    print(f"  goal p99 ≤ 10 ms (at 5,000 guards, {issue}): {verdict}")


def gc_pauses(before: dict[str, float], after: dict[str, float]) -> str:
    """Collections per generation during the run, their total time and how many took ≥ 10 ms."""

    def delta(gen: str, suffix: str, extra: str = "") -> float:
        key = f'dispatch_gc_pause_seconds_{suffix}{{generation="{gen}"{extra}}}'
        return after.get(key, 0.0) - before.get(key, 0.0)

    parts = []
    for gen in ("0", "1", "2"):
        count = delta(gen, "count")
        slow = count - delta(gen, "bucket", ',le="0.01"') if count else 0
        parts.append(
            f"gen{gen} {count:.0f} × (total {delta(gen, 'sum') * 1000:.0f} ms, {slow:.0f} ≥ 10 ms)"
        )
    return ", ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--guards", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--incidents", type=int, default=300)
    parser.add_argument("--pause-s", type=float, default=0.05)
    parser.add_argument("--ping-interval-s", type=float, default=5.0)
    parser.add_argument(
        "--replicas",
        type=int,
        default=1,
        help="servers on one PostgreSQL: guards on the first, incidents posted to the last",
    )
    compression_flag(parser)
    args = parser.parse_args()
    if args.replicas > 1 and args.db != "postgres":
        parser.error("--replicas needs --db postgres")
    print(machine_line())
    print(f"guard clients offer permessage-deflate: {args.compression != 'none'}")
    for guards in args.guards:
        asyncio.run(
            run(
                args.db,
                guards,
                args.incidents,
                args.pause_s,
                args.ping_interval_s,
                compression_of(args),
                args.replicas,
            )
        )


if __name__ == "__main__":
    main()
