"""Location pings/s one server worker accepts, with M guards pinging as fast as they can.

    .venv/bin/python -m bench.ingest --db sqlite|postgres [--guards 500] [--seconds 15]

The server runs as its own process (one worker) on a fresh database, with the
per-connection flood limit raised (DISPATCH_WS_FRAMES_PER_S=1000, DISPATCH_WS_FRAME_BURST=
1000) so that limit is not what is measured. M guards connect from --procs load processes,
go on duty, then send valid pings (strictly increasing `at`, UTC with Z, moving 1.5 m/s)
as fast as the server takes them: --window pings back to back, then an app-level
ping/pong, so every guard keeps a bounded number in flight and the server's buffers do
not balloon. The rate is the server's own counter
dispatch_location_pings_total{outcome="ok"} over the window; the write-behind is checked
by reading guard_presence at the end. Goal (the issue): ≥ 20,000 pings/s per worker.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import datetime as dt
import multiprocessing
import random
import sqlite3
import time
import traceback
from multiprocessing.connection import Connection
from typing import Any

import asyncpg
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
    machine_line,
    metrics,
    percentile,
    pg_dsn,
    raise_nofile,
    random_point,
    running_server,
    seed_guards,
)

OK = 'dispatch_location_pings_total{outcome="ok"}'


def flood_main(
    ws_url: str,
    guards: list[GuardSpec],
    compression: str | None,
    window: int,
    conn: Connection,
) -> None:
    """Load process: connect, go on duty, then ping back to back between 'go' and 'stop'."""
    try:
        asyncio.run(_flood(ws_url, guards, compression, window, conn))
    except BaseException:
        conn.send(("error", traceback.format_exc()))


async def _flood(
    ws_url: str,
    guards: list[GuardSpec],
    compression: str | None,
    window: int,
    conn: Connection,
) -> None:
    raise_nofile(len(guards) + 1000)
    phones = [GuardPhone(Seeded(g, t), lat, lon, compression) for g, t, lat, lon in guards]
    await connect_phones(phones, ws_url, duty=True)
    conn.send(("ready", len(phones)))
    await asyncio.to_thread(conn.recv)
    running = True
    sent = 0

    async def pump(phone: GuardPhone) -> None:
        nonlocal sent
        assert phone.ws is not None
        while running:
            for _ in range(window):
                await phone.ws.send(phone.location())
            sent += window
            await asyncio.wait_for(phone.round_trip(), 120)

    cpu0 = time.process_time()
    pumps = [asyncio.create_task(pump(p)) for p in phones]
    await asyncio.to_thread(conn.recv)
    running = False
    await asyncio.gather(*pumps, return_exceptions=True)
    cpu = time.process_time() - cpu0
    errors: collections.Counter[str] = collections.Counter()
    for phone in phones:
        errors.update(phone.errors)
    await asyncio.gather(*(p.close() for p in phones))
    conn.send(("done", {"sent": sent, "errors": dict(errors), "cpu_s": cpu}))


async def presence(server: Server, since: dt.datetime) -> tuple[int, int, float]:
    """guard_presence: (rows, rows seen since `since`, age in s of the newest seen_at)."""
    query = (
        "SELECT count(*), count(*) FILTER (WHERE seen_at >= $1), max(seen_at) FROM guard_presence"
    )
    if server.database_url.startswith("sqlite"):
        path = server.database_url.split("///", 1)[1]
        with sqlite3.connect(path) as db:
            total, recent, newest = db.execute(
                query.replace("$1", "?"), (since.replace(tzinfo=None).isoformat(" "),)
            ).fetchone()
        newest_at = dt.datetime.fromisoformat(newest).replace(tzinfo=dt.UTC) if newest else None
    else:
        conn = await asyncpg.connect("/".join(pg_dsn(server.database_url)))
        try:
            total, recent, newest_at = await conn.fetchrow(query, since)
        finally:
            await conn.close()
    age = (dt.datetime.now(dt.UTC) - newest_at).total_seconds() if newest_at else float("nan")
    return total, recent, age


async def run(
    db: str,
    guards: int,
    procs: int,
    seconds: float,
    warmup: float,
    compression: str | None,
    window: int,
) -> None:
    raise_nofile(2 * guards + 1000)
    started = time.perf_counter()
    async with running_server(db, ws_frames_per_s=1000, ws_frame_burst=1000) as server:
        seeded = await asyncio.to_thread(seed_guards, server, guards)
        rng = random.Random(1)
        specs = [(s.guard_id, s.token, *random_point(rng)) for s in seeded]
        ctx = multiprocessing.get_context("spawn")
        links: list[Connection] = []
        workers = []
        for p in range(procs):
            parent, child = ctx.Pipe()
            worker = ctx.Process(
                target=flood_main,
                args=(server.ws_url, specs[p::procs], compression, window, child),
                daemon=True,
            )
            worker.start()
            links.append(parent)
            workers.append(worker)
        try:
            for link in links:
                await expect_message(link, "ready", 600)
            # /metrics needs metrics:read (the admin has it); a saturated server is slow.
            client = await admin_client(server)
            client.timeout = httpx.Timeout(300)
            async with contextlib.aclosing(client):
                for link in links:
                    link.send("go")
                await asyncio.sleep(warmup)
                t0, before, cpu0 = await sample(client, server)
                window_start = dt.datetime.now(dt.UTC)
                probes = await probe_latency(client, seconds)
                t1, after, cpu1 = await sample(client, server)
                rows = await presence(server, window_start)
                for link in links:
                    link.send("stop")
                results = [await expect_message(link, "done", 120) for link in links]
                await asyncio.sleep(2.5)  # a write-behind tick or two after the last ping
                final = await presence(server, window_start)
                print(
                    f"\nping ingest, {db}, {guards} guards from {procs} load process(es), "
                    f"each sending {window} pings back to back then an app-level ping/pong; "
                    f"{t1 - t0:.1f} s window"
                )
                report(before, after, t1 - t0, cpu1 - cpu0, rows, final, results, server)
                print(
                    "  under this load, "
                    + ", ".join(
                        f"{path} p50 {percentile(sorted(ms), 50):.0f} ms max {max(ms):.0f} ms"
                        for path, ms in probes.items()
                    )
                    + " (/readyz reads the database; a probe cut off at the window's end counts "
                    "as its age)"
                )
        finally:
            for worker in workers:
                worker.join(10)
                if worker.is_alive():
                    worker.kill()
    print(f"  run time {time.perf_counter() - started:.0f} s")


async def sample(
    client: httpx.AsyncClient, server: Server
) -> tuple[float, dict[str, float], float]:
    """(time, counters, server CPU s); the time is the middle of the /metrics round trip,
    which itself can take a while when the server is saturated."""
    sent = time.perf_counter()
    values = await metrics(client)
    return (sent + time.perf_counter()) / 2, values, server.cpu_s()


async def probe_latency(client: httpx.AsyncClient, seconds: float) -> dict[str, list[float]]:
    """Time /healthz and /readyz alternately for about `seconds`: the event loop's latency
    and the database's, under load. A probe still unanswered at the end counts as its age."""
    timings: dict[str, list[float]] = {"/healthz": [], "/readyz": []}
    deadline = time.perf_counter() + seconds
    while (left := deadline - time.perf_counter()) > 0:
        for path, ms in timings.items():
            start = time.perf_counter()
            with contextlib.suppress(httpx.TimeoutException):
                await client.get(path, timeout=max(left, 0.5))
            ms.append((time.perf_counter() - start) * 1000)
        await asyncio.sleep(max(0.0, min(0.5, deadline - time.perf_counter())))
    return timings


def report(
    before: dict[str, float],
    after: dict[str, float],
    wall: float,
    cpu: float,
    rows: tuple[int, int, float],
    final: tuple[int, int, float],
    results: list[dict[str, Any]],
    server: Server,
) -> None:
    accepted = after.get(OK, 0) - before.get(OK, 0)
    others = {
        k.split('"')[1]: v - before.get(k, 0)
        for k, v in after.items()
        if k.startswith("dispatch_location_pings_total{") and k != OK and v != before.get(k, 0)
    }
    sent = sum(r["sent"] for r in results)
    client_cpu = sum(r["cpu_s"] for r in results)
    errors: collections.Counter[str] = collections.Counter()
    for r in results:
        errors.update(r["errors"])
    rate = accepted / wall
    print(
        "  (per-connection flood limit raised to 1000 frames/s, burst 1000: not what is measured)"
    )
    print(f"  accepted pings/s (server counter, outcome=ok): {rate:,.0f}")
    print(
        f"  server CPU {cpu / wall * 100:.0f} % of one core → {accepted / max(cpu, 1e-9):,.0f} "
        f"pings per server CPU-second; load processes used {client_cpu:.1f} CPU-s in total "
        f"(clients sent {sent:,} frames overall)"
    )
    print(
        f"  other ping outcomes in the window: {others or 'none'}; error frames at clients: "
        f"{dict(errors) or 'none'}"
    )
    print(
        f"  write-behind: guard_presence {rows[0]} rows, {rows[1]} updated during the window, "
        f"newest seen_at {rows[2]:.1f} s old when the window closed; 2.5 s after stop: "
        f"{final[1]}/{final[0]} guards written; server RSS {server.rss_kib() / 1024:.0f} MiB; "
        f"indexed guards {after.get('dispatch_indexed_guards', 0):.0f}"
    )
    print(f"  goal ≥ 20,000 pings/s per worker: {'met' if rate >= 20_000 else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--guards", type=int, default=500)
    parser.add_argument("--procs", type=int, default=1, help="load processes")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument(
        "--window",
        type=int,
        default=32,
        help="pings a guard sends back to back before an app-level ping/pong round trip",
    )
    compression_flag(parser)
    args = parser.parse_args()
    print(machine_line())
    print(f"guard clients offer permessage-deflate: {args.compression != 'none'}")
    asyncio.run(
        run(
            args.db,
            args.guards,
            args.procs,
            args.seconds,
            args.warmup,
            compression_of(args),
            args.window,
        )
    )


if __name__ == "__main__":
    main()
