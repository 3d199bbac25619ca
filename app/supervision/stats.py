"""Statistics the reports share: nearest-rank percentiles (in SQL, the same on SQLite and
PostgreSQL) and the seconds between two stored instants."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Float, Select, cast, extract, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession


def nearest_rank(sorted_values: Sequence[float], percent: int) -> float | None:
    """The value at rank ceil(percent/100 · n), 1-based; None for no values."""
    n = len(sorted_values)
    if n == 0:
        return None
    return sorted_values[max(1, -(-percent * n // 100)) - 1]


def seconds_between(dialect: str, later: Any, earlier: Any) -> ColumnElement[float]:
    if dialect == "sqlite":
        # julianday is a float of days: 30 s comes back as 29.9999982. Milliseconds are
        # what the stored microseconds can honestly give through it.
        return func.round((func.julianday(later) - func.julianday(earlier)) * 86400.0, 3)
    return cast(extract("epoch", later - earlier), Float)


async def percentiles(
    session: AsyncSession, samples: Select[Any]
) -> dict[Any, tuple[float, float]]:
    """p50 and p90 (nearest rank) of `samples` — a select of (key, value) — per key (a
    null key, as in a report's total, is one group).

    Only the two ranked rows per key leave the database: ROW_NUMBER over the values in
    order, and ranks ceil(n/2) = (n+1)/2 and ceil(9n/10) = (9n+9)/10 in integer arithmetic.
    """
    sub = samples.subquery()
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
