"""Nearest-k over the live index vs PostGIS KNN and Redis GEOSEARCH, on the same data.

    .venv/bin/python -m bench.nearest [--guards 100000] [--queries 10000]

100,000 on-duty, fresh, eligible guards uniform over a 40 km × 40 km box around Tianjin;
k = 10 nearest within 3 km at random points in the box, one query at a time, each timed
with perf_counter_ns. Then the same on the ground around 89.9°N (the box holds the pole),
where cells of a fixed longitude width once made one query walk millions of cells.
PostGIS and Redis are skipped, with a message, when unavailable.
Goals (issue 9): our median ≤ 25 µs, the same order of cost at 89.9° as at 39°, and ≥ 5×
faster than PostGIS KNN in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from app.geo.distance import EARTH_RADIUS_M, haversine_m
from app.geo.live_index import GuardEntry, LiveIndex
from app.settings import Settings
from bench.common import HALF_BOX_M, machine_line, percentile, random_point

Point = tuple[float, float]
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


def ground_point(lat: float, lon: float, north_m: float, east_m: float) -> Point:
    """The point north_m, east_m away along the great circle (valid across a pole, where
    bench.common.offset's flat step is not)."""
    d = math.hypot(north_m, east_m) / EARTH_RADIUS_M
    bearing = math.atan2(east_m, north_m)
    phi, lmb = math.radians(lat), math.radians(lon)
    phi2 = math.asin(math.sin(phi) * math.cos(d) + math.cos(phi) * math.sin(d) * math.cos(bearing))
    lmb2 = lmb + math.atan2(
        math.sin(bearing) * math.sin(d) * math.cos(phi),
        math.cos(d) - math.sin(phi) * math.sin(phi2),
    )
    return math.degrees(phi2), (math.degrees(lmb2) + 180.0) % 360.0 - 180.0


def polar_points(rng: random.Random, n: int, lat: float) -> list[Point]:
    """n points uniform on the ground over the same 40 km box, centred on (lat, 0)."""
    half = HALF_BOX_M
    return [
        ground_point(lat, 0.0, rng.uniform(-half, half), rng.uniform(-half, half)) for _ in range(n)
    ]


def build_index(points: Sequence[Point], now: float, cell_m: float) -> LiveIndex:
    index = LiveIndex(cell_m=cell_m, freshness_s=120)
    for i, (lat, lon) in enumerate(points):
        entry = index.put(GuardEntry(f"g{i}", "c1", frozenset({"first_aid"}), 1.4, True, now + 3e7))
        index.move(entry, lat, lon, now, now, 5.0)
        index.set_duty(entry, True)
        entry.connected = True
    return index


def report(name: str, timings_ns: list[int], found: int) -> float:
    values = sorted(t / 1000 for t in timings_ns)
    median = percentile(values, 50)
    print(
        f"{name:<22} median {median:8.1f} µs   p90 {percentile(values, 90):8.1f} µs   "
        f"p99 {percentile(values, 99):8.1f} µs   ({len(values)} queries, "
        f"{found / len(values):.1f} results each)"
    )
    return median


def time_ours(
    index: LiveIndex, queries: Sequence[Point], k: int, radius: float, now: float
) -> tuple[list[int], int]:
    timings, found = [], 0
    clock = time.perf_counter_ns
    for lat, lon in queries:
        start = clock()
        result = index.nearest(lat, lon, k=k, radius_m=radius, now=now)
        timings.append(clock() - start)
        found += len(result)
    return timings, found


def verify(
    index: LiveIndex,
    points: Sequence[Point],
    queries: Sequence[Point],
    k: int,
    radius: float,
    now: float,
) -> None:
    """The index's answers equal brute force (haversine) on a few queries."""
    for lat, lon in queries:
        got = [n.entry.guard_id for n in index.nearest(lat, lon, k=k, radius_m=radius, now=now)]
        exact = sorted((haversine_m(lat, lon, p[0], p[1]), f"g{i}") for i, p in enumerate(points))
        want = [gid for d, gid in exact[:k] if d <= radius]
        if got != want:
            raise SystemExit(f"live index disagrees with brute force at {lat},{lon}: {got} {want}")
    print(f"(checked {len(queries)} queries against brute force: identical)")


async def time_async(
    query: Callable[[float, float], Awaitable[int]], queries: Sequence[Point], warmup: int
) -> tuple[list[int], int]:
    for lat, lon in queries[:warmup]:
        await query(lat, lon)
    timings, found = [], 0
    clock = time.perf_counter_ns
    for lat, lon in queries:
        start = clock()
        found += await query(lat, lon)
        timings.append(clock() - start)
    return timings, found


async def _timed(call: Awaitable[object]) -> int:
    start = time.perf_counter_ns()
    await call
    return time.perf_counter_ns() - start


async def postgis(
    points: Sequence[Point], queries: Sequence[Point], k: int, radius: float
) -> tuple[list[int], int] | None:
    import asyncpg

    from bench.common import PG_URL, fresh_database, pg_dsn

    try:
        probe = await asyncpg.connect("/".join(pg_dsn(PG_URL)))
        try:
            available = await probe.fetchval(
                "SELECT count(*) FROM pg_available_extensions WHERE name = 'postgis'"
            )
        finally:
            await probe.close()
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"PostGIS: SKIPPED, PostgreSQL unreachable at {PG_URL} ({exc})")
        return None
    if not available:
        print(
            "PostGIS: SKIPPED, the postgis extension is not installed on this server "
            "(apt-get install postgresql-15-postgis-3)"
        )
        return None
    with tempfile.TemporaryDirectory() as tmp:
        async with fresh_database("postgres", Path(tmp), extensions=["postgis"]) as url:
            conn = await asyncpg.connect("/".join(pg_dsn(url)))
            try:
                return await _postgis_run(conn, points, queries, k, radius)
            finally:
                await conn.close()


async def _postgis_run(
    conn: object, points: Sequence[Point], queries: Sequence[Point], k: int, radius: float
) -> tuple[list[int], int]:
    import asyncpg

    assert isinstance(conn, asyncpg.Connection)
    await conn.execute("CREATE TABLE raw (id int, lat float8, lon float8)")
    await conn.copy_records_to_table(
        "raw", records=[(i, lat, lon) for i, (lat, lon) in enumerate(points)]
    )
    await conn.execute(
        "CREATE TABLE guards AS SELECT id, "
        "ST_SetSRID(ST_MakePoint(lon, lat), 4326)::geography AS geom FROM raw"
    )
    await conn.execute("CREATE INDEX guards_geom ON guards USING gist (geom)")
    await conn.execute("VACUUM ANALYZE guards")
    point = "ST_SetSRID(ST_MakePoint($1, $2), 4326)::geography"
    sql = (
        f"SELECT id, ST_Distance(geom, {point}) AS d FROM guards "
        f"WHERE ST_DWithin(geom, {point}, $3) ORDER BY geom <-> {point} LIMIT $4"
    )
    # A prepared statement settles on the generic plan (KNN index scan, ~0.2 ms) after a
    # few runs; custom plans pick bitmap scan + sort (~3 ms). Measure the KNN plan.
    await conn.execute("SET plan_cache_mode = force_generic_plan")
    await conn.execute(f"PREPARE knn(float8, float8, float8, int) AS {sql}")
    plan = [r[0].strip() for r in await conn.fetch("EXPLAIN EXECUTE knn(117.2, 39.13, 3000, 10)")]
    shown = [line.split("  (cost")[0] for line in plan if line.startswith(("->", "Order By"))]
    print(f"PostGIS: geography(Point,4326) + GiST; plan: {' / '.join(shown)}")
    stmt = await conn.prepare(sql)
    ping = await conn.prepare("SELECT 1")
    floor = [await _timed(ping.fetchval()) for _ in range(2000)]
    print(
        f"(PostgreSQL round-trip floor, prepared SELECT 1: median "
        f"{percentile(sorted(floor), 50) / 1000:.1f} µs)"
    )

    async def query(lat: float, lon: float) -> int:
        return len(await stmt.fetch(lon, lat, radius, k))

    return await time_async(query, queries, warmup=500)


async def redis_geo(
    points: Sequence[Point], queries: Sequence[Point], k: int, radius: float
) -> tuple[list[int], int] | None:
    try:
        import redis.asyncio as aioredis
        from redis.exceptions import RedisError
    except ImportError:
        print("Redis: SKIPPED, the redis package is not installed (.venv/bin/pip install redis)")
        return None
    client = aioredis.from_url(REDIS_URL)
    key = f"bench:nearest:{uuid.uuid4().hex[:8]}"
    try:
        await client.ping()
    except (OSError, RedisError) as exc:
        print(f"Redis: SKIPPED, unreachable at {REDIS_URL} ({exc})")
        await client.aclose()
        return None
    try:
        for start in range(0, len(points), 10_000):
            values: list[float | str] = []
            for i, (lat, lon) in enumerate(points[start : start + 10_000], start):
                values += [lon, lat, f"g{i}"]
            await client.execute_command("GEOADD", key, *values)

        async def query(lat: float, lon: float) -> int:
            reply = await client.execute_command(
                "GEOSEARCH",
                key,
                "FROMLONLAT",
                lon,
                lat,
                "BYRADIUS",
                radius,
                "m",
                "ASC",
                "COUNT",
                k,
                "WITHDIST",
            )
            return len(reply)

        floor = [await _timed(client.ping()) for _ in range(2000)]
        print(
            f"(Redis round-trip floor, PING: median {percentile(sorted(floor), 50) / 1000:.1f} µs)"
        )
        return await time_async(query, queries, warmup=500)
    finally:
        await client.delete(key)
        await client.aclose()


def polar_case(args: argparse.Namespace, now: float) -> float:
    """The same guards, queries and k on the ground around (polar_lat, 0); its median."""
    rng = random.Random(args.seed)
    points = polar_points(rng, args.guards, args.polar_lat)
    queries = polar_points(rng, args.queries, args.polar_lat)
    index = build_index(points, now, args.cell_m)
    print(f"around {args.polar_lat}°N: {len(index)} guards in {len(index._cells)} cells")
    verify(index, points, queries[:5], args.k, args.radius_m, now)
    time_ours(index, queries[:1000], args.k, args.radius_m, now)  # warm-up
    return report(
        f"live index {args.polar_lat}°N", *time_ours(index, queries, args.k, args.radius_m, now)
    )


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--guards", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--radius-m", type=float, default=3000.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--cell-m",
        type=float,
        default=Settings.model_fields["index_cell_m"].default,
        help="grid cell size (default: the service's DISPATCH_INDEX_CELL_M)",
    )
    parser.add_argument("--polar-lat", type=float, default=89.9)
    parser.add_argument("--no-postgis", action="store_true")
    parser.add_argument("--no-redis", action="store_true")
    args = parser.parse_args()
    print(machine_line())
    rng = random.Random(args.seed)
    points = [random_point(rng) for _ in range(args.guards)]
    queries = [random_point(rng) for _ in range(args.queries)]
    now = time.time()
    started = time.perf_counter()
    index = build_index(points, now, args.cell_m)
    print(
        f"live index: {len(index)} guards in {len(index._cells)} cells of {args.cell_m:.0f} m, "
        f"built in {time.perf_counter() - started:.2f} s; k={args.k}, radius {args.radius_m:.0f} m"
    )
    verify(index, points, queries[:5], args.k, args.radius_m, now)
    time_ours(index, queries[:1000], args.k, args.radius_m, now)  # warm-up
    ours = report("live index (ours)", *time_ours(index, queries, args.k, args.radius_m, now))
    peers: dict[str, float] = {}
    if not args.no_postgis and (got := await postgis(points, queries, args.k, args.radius_m)):
        peers["PostGIS KNN"] = report("PostGIS KNN (asyncpg)", *got)
    if not args.no_redis and (got := await redis_geo(points, queries, args.k, args.radius_m)):
        peers["Redis GEOSEARCH"] = report("Redis GEOSEARCH", *got)
    for name, median in peers.items():
        print(f"ratio {name} median / ours: {median / ours:.1f}×")
    polar = polar_case(args, now)
    verdict = "met" if ours <= 25 else "NOT met"
    print(f"goal median ≤ 25 µs: {verdict} ({ours:.1f} µs)")
    print(f"cost at {args.polar_lat}° / at 39.13°: {polar / ours:.2f}×")
    if "PostGIS KNN" in peers:
        ratio = peers["PostGIS KNN"] / ours
        print(f"goal ≥ 5× faster than PostGIS: {'met' if ratio >= 5 else 'NOT met'} ({ratio:.1f}×)")


if __name__ == "__main__":
    asyncio.run(main())
