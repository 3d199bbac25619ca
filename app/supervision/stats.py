"""Statistics the reports share: nearest-rank percentiles (in SQL, the same on SQLite and
PostgreSQL) and the seconds between two stored instants."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    ColumnElement,
    Float,
    Select,
    cast,
    extract,
    func,
    literal_column,
    or_,
    select,
    text,
    tuple_,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession

TOTAL = "*"  # the key of a report's total among its rows: no id, day or station is '*'


# A report is a few large read-only aggregations. On PostgreSQL: no JIT (it spent ~0.4 s
# compiling each statement), no parallel workers (each rebuilt the same CTE, on 2 cores),
# sorts in memory rather than spilled. (Its time limit is Database.long_read's.)
_REPORT_SETTINGS = (
    "SET LOCAL jit = off",
    "SET LOCAL max_parallel_workers_per_gather = 0",
    "SET LOCAL work_mem = '64MB'",
    # asyncpg prepares each statement once per connection; after five runs PostgreSQL may
    # switch to a generic plan, blind to the period's dates (it took 3 s instead of 1.7).
    "SET LOCAL plan_cache_mode = force_custom_plan",
)


async def settle_for_reports(session: AsyncSession) -> None:
    """Tune this (read-only) transaction for a report; a no-op on SQLite."""
    if session.get_bind().dialect.name == "postgresql":
        for statement in _REPORT_SETTINGS:
            await session.execute(text(statement))


def seconds_between(dialect: str, later: Any, earlier: Any) -> ColumnElement[float]:
    if dialect == "sqlite":
        # julianday is a float of days: 30 s comes back as 29.9999982. Milliseconds are
        # what the stored microseconds can honestly give through it.
        return func.round((func.julianday(later) - func.julianday(earlier)) * 86400.0, 3)
    return cast(extract("epoch", later - earlier), Float)


async def percentiles(
    session: AsyncSession, samples: Select[Any]
) -> dict[Any, tuple[float, float]]:
    """p50 and p90 (nearest rank) of `samples` — a select of (key, value) — per key, and
    over all of them under TOTAL.

    PostgreSQL's percentile_disc is nearest rank (the first value whose cumulative share
    reaches p), with GROUPING SETS giving the total in the same pass. Elsewhere only the
    two ranked rows per key leave the database: ROW_NUMBER over the values in order, and
    ranks ceil(n/2) = (n+1)//2 and ceil(9n/10) = (9n+9)//10.
    """
    if session.get_bind().dialect.name == "postgresql":
        return await _percentiles_disc(session, samples)
    s = samples.cte("s")
    both = union_all(select(s.c.key, s.c.value), select(literal_column(f"'{TOTAL}'"), s.c.value))
    sub = both.subquery()
    order = func.row_number().over(partition_by=sub.c.key, order_by=sub.c.value)
    count = func.count().over(partition_by=sub.c.key)
    ranked = select(sub.c.key, sub.c.value, order.label("rn"), count.label("n")).subquery()
    rows = await session.execute(
        select(ranked.c.key, ranked.c.value, ranked.c.rn, ranked.c.n).where(
            or_(ranked.c.rn == (ranked.c.n + 1) // 2, ranked.c.rn == (9 * ranked.c.n + 9) // 10)
        )
    )
    found: dict[Any, tuple[float, float]] = {}
    for key_value, value, rn, n in rows:
        p50, p90 = found.get(key_value, (value, value))
        if rn == (n + 1) // 2:
            p50 = value
        if rn == (9 * n + 9) // 10:
            p90 = value
        found[key_value] = (p50, p90)
    return found


async def _percentiles_disc(
    session: AsyncSession, samples: Select[Any]
) -> dict[Any, tuple[float, float]]:
    sub = samples.subquery()
    rows = await session.execute(
        select(
            func.grouping(sub.c.key),
            sub.c.key,
            func.percentile_disc(0.5).within_group(sub.c.value),
            func.percentile_disc(0.9).within_group(sub.c.value),
        ).group_by(func.grouping_sets(tuple_(sub.c.key), tuple_()))
    )
    # The () grouping set answers a row even over no samples at all: none is no percentile.
    return {TOTAL if total else key: (p50, p90) for total, key, p50, p90 in rows if p50 is not None}
