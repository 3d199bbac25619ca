"""Incidents/s accepted with C concurrent clients spread across N replicas.

    .venv/bin/python -m bench.intake [--replicas 2] [--clients 1 8 32] [--seconds 30]
                                     [--warmup-s 5] [--guards 0] [--db postgres]

N replicas (`python -m app serve` processes, one worker each) run on one fresh database
(PostgreSQL; one replica may also be SQLite). C clients, client i posting to replica
i mod N, each on its own keep-alive HTTP/1.1 connection (plain asyncio streams: cheap on
the shared CPU), post DESIGN §5 incidents (random points in the 40 km box around
Tianjin, priorities 1–4) as the admin, back to back, each waiting for its answer. After
--warmup-s, the window of --seconds counts the 201s that came back within it
(incidents/s), the other answers by status, and the POST → answer latency. With --guards
G, G seeded guards are online first (load processes, split over the replicas, pinging
every 10 s, answering offers as bench.load_replicas's phones do), so incidents are
dispatched, not just stored. The client counts run one after the other on the same
servers and database. Goal (issue 13): ≥ 600 incidents/s with 32 clients across 2
replicas.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import os
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from bench.common import (
    PostgresCpu,
    RawHttp,
    Server,
    admin_token,
    machine_line,
    percentile,
    pg_dsn,
    raise_nofile,
    random_point,
    running_replicas,
    seed_guards,
)
from bench.load_replicas import answering_fleets, incident_body

GOAL_PER_S = 600.0
POST_TIMEOUT_S = 30.0


@dataclass
class Answer:
    t0: float  # perf_counter() when the request was written
    t1: float  # … when its answer was read
    status: int | str


async def client_loop(
    server: Server,
    token: str,
    rng: random.Random,
    priority: int | None,
    stop_at: float,
    answers: list[Answer],
) -> None:
    """Post incidents back to back to one replica until stop_at (perf_counter)."""
    http = RawHttp("127.0.0.1", server.port, token)
    try:
        while time.perf_counter() < stop_at:
            body = incident_body(rng, priority)
            t0 = time.perf_counter()
            status: int | str
            try:
                async with asyncio.timeout(POST_TIMEOUT_S):
                    status, _ = await http.post("/api/v1/incidents", body)
            except TimeoutError:
                status = "timeout"
                await http.close()
            except (OSError, asyncio.IncompleteReadError) as exc:
                status = type(exc).__name__
                await asyncio.sleep(0.05)  # a refused connection must not spin
            answers.append(Answer(t0, time.perf_counter(), status))
    finally:
        await http.close()


async def measure(
    servers: Sequence[Server],
    token: str,
    clients: int,
    warmup_s: float,
    seconds: float,
    guards: int,
    db: str,
    priority: int | None,
) -> int:
    """One window; prints its figures and returns how many 201s came back in all."""
    answers: list[Answer] = []
    begin = time.perf_counter()
    w0, w1 = begin + warmup_s, begin + warmup_s + seconds
    loops = [
        asyncio.create_task(
            client_loop(servers[i % len(servers)], token, random.Random(i), priority, w1, answers)
        )
        for i in range(clients)
    ]
    await asyncio.sleep(max(0.0, w0 - time.perf_counter()))
    cpu0 = [server.cpu_s() for server in servers]
    pg0, me0 = PostgresCpu(), time.process_time()
    await asyncio.sleep(max(0.0, w1 - time.perf_counter()))
    cpu = [server.cpu_s() - c for server, c in zip(servers, cpu0, strict=True)]
    pg, me = pg0.used_s(), time.process_time() - me0
    rss = [server.rss_kib() for server in servers]
    load = os.getloadavg()[0]
    await asyncio.wait(loops, timeout=POST_TIMEOUT_S + 5)
    in_window = [a for a in answers if w0 <= a.t1 <= w1]
    created = sorted((a.t1 - a.t0) * 1000 for a in in_window if a.status == 201)
    others = collections.Counter(str(a.status) for a in in_window if a.status != 201)
    slow = sorted((a.t1 - a.t0) * 1000 for a in in_window)
    print(
        f"\nintake, {db}, {len(servers)} replica{'s' if len(servers) > 1 else ''}, "
        f"{clients} client{'s' if clients > 1 else ''}, {guards} guards online, "
        f"priority {priority or 'mix 1–4'}, {seconds:.0f} s after {warmup_s:.0f} s of warm-up"
    )
    print(
        f"  accepted (201): {len(created)} = {len(created) / seconds:.1f} incidents/s   "
        f"other answers: {dict(others) or 'none'}"
    )
    print(
        f"  POST → 201: p50 {percentile(created, 50):.1f} ms   p90 "
        f"{percentile(created, 90):.1f} ms   p99 {percentile(created, 99):.1f} ms   "
        f"max {max(slow, default=float('nan')):.1f} ms (any answer)"
    )
    per = "   ".join(
        f"r{i} {c / seconds * 100:.0f} % / {r / 1024:.0f} MiB"
        for i, (c, r) in enumerate(zip(cpu, rss, strict=True))
    )
    print(
        f"  CPU % of a core / RSS: {per}   PostgreSQL {pg / seconds * 100:.0f} %   "
        f"this client {me / seconds * 100:.0f} %   (load average {load:.1f})"
    )
    if created:
        print(
            f"  CPU per accepted incident: replicas {sum(cpu) / len(created) * 1000:.1f} ms, "
            f"PostgreSQL {pg / len(created) * 1000:.1f} ms"
        )
    if len(servers) == 2 and clients == 32:
        verdict = "met" if len(created) / seconds >= GOAL_PER_S else "NOT met"
        print(f"  goal ≥ {GOAL_PER_S:.0f} incidents/s, 32 clients, 2 replicas: {verdict}")
    return sum(1 for a in answers if a.status == 201)


async def incident_rows(database_url: str) -> int | None:
    if not database_url.startswith("postgresql"):
        return None
    dsn, name = pg_dsn(database_url)
    conn = await asyncpg.connect(f"{dsn}/{name}")
    try:
        return int(await conn.fetchval("SELECT count(*) FROM incidents"))
    finally:
        await conn.close()


async def run(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    raise_nofile(args.guards + 2000)
    async with running_replicas(args.db, args.replicas) as servers:
        token = await admin_token(servers[0])
        async with contextlib.AsyncExitStack() as stack:
            if args.guards:
                seeded = await asyncio.to_thread(seed_guards, servers[0], args.guards)
                rng = random.Random(args.guards)
                specs = [(s.guard_id, s.token, *random_point(rng)) for s in seeded]
                procs = max(args.procs, len(servers))
                await stack.enter_async_context(
                    answering_fleets(servers, specs, procs, 10.0, args.accept_share)
                )
                await asyncio.sleep(14.0)  # every guard has pinged; the replicas know them
                print(
                    f"  ({args.guards} guards online in {procs} load processes after "
                    f"{time.perf_counter() - started:.0f} s)"
                )
            total = 0
            for clients in args.clients:
                total += await measure(
                    servers,
                    token,
                    clients,
                    args.warmup_s,
                    args.seconds,
                    args.guards,
                    args.db,
                    args.priority,
                )
        rows = await incident_rows(servers[0].database_url)
        if rows is not None:
            verdict = "match" if rows == total else "MISMATCH"
            print(
                f"\n  201 answers in all {total}, incident rows in the database {rows}: {verdict}"
            )
        for i, server in enumerate(servers):
            tail = server.log_tail(5).strip()
            if tail:
                print(f"  r{i} log tail:\n    " + tail.replace("\n", "\n    "))
    print(f"  run time {time.perf_counter() - started:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="postgres")
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--clients", type=int, nargs="+", default=[32])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--warmup-s", type=float, default=5.0)
    parser.add_argument("--guards", type=int, default=0, help="guards online (seeded)")
    parser.add_argument("--procs", type=int, default=2, help="guards' load processes")
    parser.add_argument("--accept-share", type=float, default=0.6)
    parser.add_argument(
        "--priority",
        type=int,
        choices=[1, 2, 3, 4],
        help="post only this priority (default: the mix of priorities 1–4)",
    )
    args = parser.parse_args()
    print(machine_line())
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
