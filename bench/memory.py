"""Server memory per idle, authenticated guard websocket.

    .venv/bin/python -m bench.memory [--connections 2000] [--db sqlite|postgres]

The server runs as its own process on a fresh database with DISPATCH_WS_IDLE_TIMEOUT_S
raised so idle sockets are not dropped. After a warm-up (some guards connect and leave,
some HTTP requests), its RSS (/proc/<pid>/status VmRSS) is read with 0 guard connections,
then with N connections that have done hello/welcome and send nothing else (transport
keepalive pings are answered by the client library). Reported: (RSS delta) / N.
Goal (the issue): ≤ 32 KiB per connection.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time

from bench.common import (
    GuardPhone,
    Server,
    admin_client,
    compression_flag,
    compression_of,
    connect_phones,
    machine_line,
    metrics,
    raise_nofile,
    random_point,
    running_server,
    seed_guards,
)


async def settled_rss(server: Server, seconds: float = 3.0) -> int:
    """RSS in KiB once it stops moving (the last of a few readings)."""
    readings = []
    for _ in range(int(seconds / 0.5)):
        await asyncio.sleep(0.5)
        readings.append(server.rss_kib())
    return readings[-1]


async def run(db: str, connections: int, warmup: int, compression: str | None) -> None:
    raise_nofile(2 * connections + 1000)
    started = time.perf_counter()
    async with running_server(db, ws_idle_timeout_s=86_400) as server:
        seeded = await asyncio.to_thread(seed_guards, server, connections + warmup)
        rng = random.Random(7)
        phones = [GuardPhone(s, *random_point(rng), compression=compression) for s in seeded]
        idle, warm = phones[:connections], phones[connections:]
        client = await admin_client(server)
        try:
            for _ in range(3):  # warm-up: every code path once, then back to 0 guards
                await connect_phones(warm, server.ws_url, duty=False)
                await asyncio.gather(*(p.close() for p in warm))
                for _ in range(20):
                    (await client.get("/api/v1/guards", params={"limit": 50})).raise_for_status()
            await asyncio.sleep(1.0)
            base = await settled_rss(server)
            before = await metrics(client)
            steps = [base]  # RSS after each quarter of the connections
            connect_started = time.perf_counter()
            for quarter in range(4):
                batch = idle[quarter * connections // 4 : (quarter + 1) * connections // 4]
                await connect_phones(batch, server.ws_url, duty=False)
                steps.append(await settled_rss(server))
            connect_s = time.perf_counter() - connect_started
            after = await metrics(client)
            await asyncio.gather(*(p.close() for p in idle))
            released = await settled_rss(server)
        finally:
            await client.aclose()
        loaded = steps[-1]
        per_conn = (loaded - base) / connections
        marginal = (loaded - steps[1]) / (connections - connections // 4)
        print(
            f"\nidle websocket memory, {db}, {connections} guard connections "
            f"(hello/welcome done, no pings; client offers permessage-deflate: "
            f"{'yes' if compression else 'no'}; {connect_s:.1f} s to connect them)"
        )
        print(
            f"  server RSS with 0 connections {base / 1024:.1f} MiB, with {connections} "
            f"{loaded / 1024:.1f} MiB, after they closed {released / 1024:.1f} MiB; "
            f"by quarters: {', '.join(f'{r / 1024:.1f}' for r in steps)} MiB"
        )
        print(
            f"  per connection: {per_conn:.1f} KiB (RSS delta / N); marginal over the last "
            f"three quarters {marginal:.1f} KiB   (server saw "
            f"{after.get('dispatch_guard_connections', 0):.0f} open, was "
            f"{before.get('dispatch_guard_connections', 0):.0f})"
        )
        print(f"  goal ≤ 32 KiB per connection: {'met' if per_conn <= 32 else 'NOT met'}")
    print(f"  run time {time.perf_counter() - started:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=100, help="guards used to warm up")
    compression_flag(parser)
    args = parser.parse_args()
    print(machine_line())
    asyncio.run(run(args.db, args.connections, args.warmup, compression_of(args)))


if __name__ == "__main__":
    main()
