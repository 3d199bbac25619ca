"""What the consoles' positions feed (/ws/positions) costs the server, and what it sends.

    .venv/bin/python -m bench.positions_feed --db sqlite|postgres [--guards 5000]
        [--consoles 1,10] [--seconds 20]

The server runs as its own process (one worker) on a fresh database. --guards guards
connect from --procs load processes, go on duty and ping every 5 s (±20 %), spread over a
40 km × 40 km box around Tianjin. The server's CPU (/proc/<pid>/stat) is read over a
--seconds window with no console connected, then with each number of consoles in
--consoles, every one subscribed with a box covering the whole city; each console counts
the frames, bytes and guard items it receives. First, in this process, one feed tick
over a 5,000-guard index is timed (finding what changed, and filtering and encoding it
for 10 consoles) without sockets.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import math
import random
import statistics
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from app.clock import ManualClock
from app.geo.live_index import GuardEntry, LiveIndex
from app.realtime.positions_feed import FeedClient, PositionsFeed
from app.realtime.positions_view import Viewer
from bench.common import (
    CENTER,
    HALF_BOX_M,
    M_PER_DEG,
    Server,
    admin_client,
    machine_line,
    raise_nofile,
    random_point,
    running_server,
    seed_guards,
)
from bench.dispatch_latency import pinging_fleets

PING_INTERVAL_S = 5.0


def city_bbox() -> str:
    """west,south,east,north around the whole 40 km box, with a margin."""
    half_lat = (HALF_BOX_M + 5000) / M_PER_DEG
    half_lon = half_lat / math.cos(math.radians(CENTER[0]))
    lat, lon = CENTER
    return f"{lon - half_lon},{lat - half_lat},{lon + half_lon},{lat + half_lat}"


# One tick in process ----------------------------------------------------------------------


def time_one_tick(guards: int, changed: int, consoles: int, repeats: int = 50) -> None:
    """Median cost of the feed's two halves with `changed` of `guards` guards moving."""
    clock = ManualClock()
    now = clock.now().timestamp()
    live = LiveIndex(freshness_s=120)
    rng = random.Random(7)
    entries = []
    for i in range(guards):
        entry = live.put(GuardEntry(f"grd_{i:06d}", f"c{i % 20}", frozenset(), 1.4, True, 4e9))
        live.set_duty(entry, True)
        live.connect(entry)
        live.move(entry, *random_point(rng), now, now, 5.0)
        entries.append(entry)
    ctx = SimpleNamespace(live=live, clock=clock, settings=None)
    feed = PositionsFeed(ctx)  # type: ignore[arg-type]
    feed._names = {e.guard_id: (f"Guard {e.guard_id}", f"B-{e.guard_id}") for e in entries}
    clients = [FeedClient(Viewer(None, None)) for _ in range(consoles)]
    for client in clients:
        client.known = set(live.entries)
        client.queue = asyncio.Queue()  # unbounded here: nothing reads them
        feed._clients.add(client)
    feed._collect(now)
    collect_ms: list[float] = []
    fan_out_ms: list[float] = []
    for _ in range(repeats):
        clock.advance(1.0)
        now = clock.now().timestamp()
        for entry in rng.sample(entries, changed):
            live.move(entry, entry.lat + 1e-5, entry.lon, now, now, 5.0)
        t0 = time.perf_counter()
        found, gone = feed._collect(now)
        t1 = time.perf_counter()
        feed._fan_out(found, gone, "2026-01-01T00:00:00Z", feed.ticks + 1)
        t2 = time.perf_counter()
        collect_ms.append((t1 - t0) * 1000)
        fan_out_ms.append((t2 - t1) * 1000)
        assert len(found) == changed
    quiet_ms = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        feed._collect(now)
        quiet_ms.append((time.perf_counter() - t0) * 1000)
    print(
        f"one tick in process, {guards:,} guards indexed, {changed:,} moved since the last "
        f"tick: finding the changes {statistics.median(collect_ms):.2f} ms, filtering and "
        f"encoding for {consoles} consoles {statistics.median(fan_out_ms):.2f} ms "
        f"(medians of {repeats}); a tick with nothing changed "
        f"{statistics.median(quiet_ms) * 1000:.0f} µs"
    )


# The server under load --------------------------------------------------------------------


@dataclass
class ConsoleStats:
    frames: int = 0
    bytes: int = 0
    items: int = 0
    gone: int = 0
    snapshot_items: int = 0
    kinds: dict[str, int] = field(default_factory=dict)


async def console_reader(ws: ClientConnection, stats: ConsoleStats) -> None:
    with contextlib.suppress(ConnectionClosed):
        async for raw in ws:
            frame = json.loads(raw)
            kind = frame["type"]
            stats.kinds[kind] = stats.kinds.get(kind, 0) + 1
            if kind == "positions.snapshot":
                stats.snapshot_items = len(frame["items"])
                continue
            stats.frames += 1
            stats.bytes += len(raw)
            if kind == "positions":
                stats.items += len(frame["items"])
                stats.gone += len(frame["gone"])


async def measure(server: Server, token: str, consoles: int, seconds: float) -> dict[str, Any]:
    """Server CPU over the window with `consoles` consoles, and what each received."""
    sockets: list[ClientConnection] = []
    stats = [ConsoleStats() for _ in range(consoles)]
    readers = []
    try:
        for stat in stats:
            ws = await connect(
                f"{server.ws_url}/ws/positions?bbox={city_bbox()}",
                additional_headers={"Authorization": f"Bearer {token}"},
                max_size=None,
                open_timeout=30,
            )
            sockets.append(ws)
            readers.append(asyncio.create_task(console_reader(ws, stat)))
        async with asyncio.timeout(60):
            while any(s.kinds.get("positions.snapshot", 0) == 0 for s in stats):
                await asyncio.sleep(0.05)
        await asyncio.sleep(2.0)  # past the first ticks
        for stat in stats:
            stat.frames = stat.bytes = stat.items = stat.gone = 0
        cpu0, t0 = server.cpu_s(), time.perf_counter()
        await asyncio.sleep(seconds)
        cpu1, t1 = server.cpu_s(), time.perf_counter()
        window = t1 - t0
        snapshot = [dataclass_copy(s) for s in stats]
    finally:
        for ws in sockets:
            with contextlib.suppress(Exception):
                await ws.close()
        for task in readers:
            task.cancel()
    return {
        "cpu": (cpu1 - cpu0) / window,
        "window": window,
        "stats": snapshot,
    }


def dataclass_copy(stats: ConsoleStats) -> ConsoleStats:
    return ConsoleStats(
        stats.frames, stats.bytes, stats.items, stats.gone, stats.snapshot_items, dict(stats.kinds)
    )


async def run(db: str, guards: int, procs: int, consoles: list[int], seconds: float) -> None:
    raise_nofile(2 * guards + 1000)
    started = time.perf_counter()
    async with running_server(db) as server:
        seeded = await asyncio.to_thread(seed_guards, server, guards)
        rng = random.Random(guards)
        specs = [(s.guard_id, s.token, *random_point(rng)) for s in seeded]
        async with pinging_fleets(server.ws_url, specs, procs, PING_INTERVAL_S) as stop:
            setup_s = time.perf_counter() - started
            await asyncio.sleep(PING_INTERVAL_S * 1.5)  # every guard has pinged
            client = await admin_client(server)
            token = client.headers["Authorization"].split(" ", 1)[1]
            await client.aclose()
            print(
                f"\npositions feed, {db}, {guards:,} guards pinging every "
                f"{PING_INTERVAL_S:.0f} s (±20 %) from {procs} load process(es); "
                f"{seconds:.0f} s windows; consoles subscribe to the whole city "
                f"(set up in {setup_s:.0f} s)"
            )
            cpu0, t0 = server.cpu_s(), time.perf_counter()
            await asyncio.sleep(seconds)
            base = (server.cpu_s() - cpu0) / (time.perf_counter() - t0)
            print(f"  no console: server CPU {base * 100:.1f} % of one core")
            for n in consoles:
                try:
                    result = await measure(server, token, n, seconds)
                except OSError as exc:
                    raise RuntimeError(f"{exc}; server log:\n{server.log_tail()}") from exc
                report(n, result, base)
                await asyncio.sleep(2.0)
            errors = await stop()
            print(f"  error frames received by guards: {errors or 'none'}")
    print(f"  run time {time.perf_counter() - started:.0f} s")


def report(consoles: int, result: dict[str, Any], base: float) -> None:
    window = result["window"]
    stats: list[ConsoleStats] = result["stats"]
    per_s = [s.bytes / window for s in stats]
    frames = [s.frames / window for s in stats]
    items = [s.items / max(1, s.kinds.get("positions", 0)) for s in stats]
    print(
        f"  {consoles} console(s): server CPU {result['cpu'] * 100:.1f} % of one core "
        f"(+{(result['cpu'] - base) * 100:.1f} points over no console); per console "
        f"{statistics.mean(per_s) / 1024:.1f} KiB/s, {statistics.mean(frames):.2f} messages/s, "
        f"{statistics.mean(items):.0f} guard updates per message, "
        f"{statistics.mean(s.items for s in stats) / window:.0f} updates/s; "
        f"snapshot had {stats[0].snapshot_items:,} guards"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--guards", type=int, default=5000)
    parser.add_argument("--procs", type=int, default=2, help="load processes")
    parser.add_argument("--consoles", default="1,10", help="comma-separated console counts")
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    print(machine_line())
    print(f"started {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC")
    time_one_tick(5000, 1000, 10)
    counts = [int(n) for n in args.consoles.split(",") if n.strip()]
    asyncio.run(run(args.db, args.guards, args.procs, counts, args.seconds))


if __name__ == "__main__":
    main()
