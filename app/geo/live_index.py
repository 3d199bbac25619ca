"""The live index: every on-duty guard's latest position in memory, in a grid of cells.

A query walks rings of cells outwards from the query point and stops as soon as no
unvisited cell can hold anything nearer than what it already has, so it touches only
the neighbourhood, never every guard. Distances inside a query use a local
equirectangular frame (error below 0.1 % within 10 km); reported distances are haversine.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from app.geo.distance import METRES_PER_DEGREE_LAT, haversine_m


class GuardEntry:
    """One guard as the index sees it; mutated in place as pings arrive."""

    __slots__ = (
        "guard_id",
        "company_id",
        "skills",
        "speed_mps",
        "eligible",
        "eligible_until",
        "on_duty",
        "lat",
        "lon",
        "accuracy_m",
        "located_at",
        "seen_at",
        "connected",
        "engaged",
        "cell",
    )

    def __init__(
        self,
        guard_id: str,
        company_id: str,
        skills: frozenset[str],
        speed_mps: float,
        eligible: bool,
        eligible_until: float,
    ) -> None:
        self.guard_id = guard_id
        self.company_id = company_id
        self.skills = skills
        self.speed_mps = speed_mps
        self.eligible = eligible  # guard and company active
        self.eligible_until = eligible_until  # epoch s: certificate / licence expiry
        self.on_duty = False
        self.lat = 0.0
        self.lon = 0.0
        self.accuracy_m: float | None = None
        self.located_at = 0.0  # device time of the last accepted ping, epoch s
        self.seen_at = 0.0  # server time it arrived, epoch s
        self.connected = False
        self.engaged = False  # holds an offer or assignment (a hint; the database decides)
        self.cell: tuple[int, int] | None = None

    def dispatchable(self, now: float, fresh_after: float) -> bool:
        return (
            self.on_duty
            and self.eligible
            and not self.engaged
            and self.seen_at >= fresh_after
            and self.eligible_until > now
        )


@dataclass(frozen=True, slots=True)
class Nearby:
    entry: GuardEntry
    distance_m: float


class LiveIndex:
    """Grid index of on-duty guard positions. Single-threaded: call from the event loop."""

    def __init__(self, cell_m: float = 250.0, freshness_s: float = 120.0) -> None:
        self.cell_deg = cell_m / METRES_PER_DEGREE_LAT
        self.freshness_s = freshness_s
        self.entries: dict[str, GuardEntry] = {}
        self._cells: dict[tuple[int, int], dict[str, GuardEntry]] = {}

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[GuardEntry]:
        return iter(self.entries.values())

    def get(self, guard_id: str) -> GuardEntry | None:
        return self.entries.get(guard_id)

    def put(self, entry: GuardEntry) -> GuardEntry:
        """Add or replace a guard's entry, keeping its position, duty and flags if known."""
        old = self.entries.get(entry.guard_id)
        if old is not None:
            for attr in (
                "on_duty",
                "lat",
                "lon",
                "accuracy_m",
                "located_at",
                "seen_at",
                "connected",
                "engaged",
            ):
                setattr(entry, attr, getattr(old, attr))
            self._unplace(old)
        self.entries[entry.guard_id] = entry
        if entry.on_duty and entry.seen_at:
            self._place(entry)
        return entry

    def remove(self, guard_id: str) -> None:
        entry = self.entries.pop(guard_id, None)
        if entry is not None:
            self._unplace(entry)

    def move(
        self,
        entry: GuardEntry,
        lat: float,
        lon: float,
        located_at: float,
        seen_at: float,
        accuracy_m: float | None = None,
    ) -> None:
        """Record an accepted position (the caller has validated it)."""
        entry.lat, entry.lon = lat, lon
        entry.located_at, entry.seen_at, entry.accuracy_m = located_at, seen_at, accuracy_m
        if entry.on_duty:
            cell = (int(math.floor(lat / self.cell_deg)), int(math.floor(lon / self.cell_deg)))
            if cell != entry.cell:
                self._unplace(entry)
                self._cells.setdefault(cell, {})[entry.guard_id] = entry
                entry.cell = cell

    def set_duty(self, entry: GuardEntry, on_duty: bool) -> None:
        entry.on_duty = on_duty
        if on_duty and entry.seen_at:
            self._place(entry)
        elif not on_duty:
            self._unplace(entry)

    def mark_stale(self, entry: GuardEntry) -> None:
        """The guard's connection dropped: its position no longer counts as fresh."""
        entry.connected = False
        entry.seen_at = 0.0

    def _place(self, entry: GuardEntry) -> None:
        cell = (
            int(math.floor(entry.lat / self.cell_deg)),
            int(math.floor(entry.lon / self.cell_deg)),
        )
        if entry.cell != cell:
            self._unplace(entry)
            self._cells.setdefault(cell, {})[entry.guard_id] = entry
            entry.cell = cell

    def _unplace(self, entry: GuardEntry) -> None:
        if entry.cell is not None:
            members = self._cells.get(entry.cell)
            if members is not None:
                members.pop(entry.guard_id, None)
                if not members:
                    del self._cells[entry.cell]
            entry.cell = None

    def nearest(
        self,
        lat: float,
        lon: float,
        *,
        k: int,
        radius_m: float,
        now: float,
        accept: Callable[[GuardEntry], bool] | None = None,
    ) -> list[Nearby]:
        """Up to k dispatchable guards within radius_m, nearest first."""
        fresh_after = now - self.freshness_s
        cell_deg = self.cell_deg
        m_lat = METRES_PER_DEGREE_LAT
        m_lon = max(1.0, m_lat * math.cos(math.radians(lat)))
        # Any cell in ring r is at least (r - 1) cell widths away in its narrower side.
        ring_step_m = cell_deg * min(m_lat, m_lon)
        max_ring = int(radius_m / ring_step_m) + 2
        ci, cj = int(math.floor(lat / cell_deg)), int(math.floor(lon / cell_deg))
        radius_sq = radius_m * radius_m
        best: list[tuple[float, str, GuardEntry]] = []  # max-heap by -d²
        bound_sq = radius_sq
        cells = self._cells
        for ring in range(max_ring + 1):
            if ring >= 2:
                reach = (ring - 1) * ring_step_m
                if reach * reach > bound_sq:
                    break
            for cell in _ring(ci, cj, ring):
                members = cells.get(cell)
                if not members:
                    continue
                for entry in members.values():
                    dy = (entry.lat - lat) * m_lat
                    dx = (entry.lon - lon) * m_lon
                    d_sq = dx * dx + dy * dy
                    if d_sq > bound_sq:
                        continue
                    if (
                        not entry.eligible
                        or entry.engaged
                        or entry.seen_at < fresh_after
                        or entry.eligible_until <= now
                        or (accept is not None and not accept(entry))
                    ):
                        continue
                    if len(best) < k:
                        heapq.heappush(best, (-d_sq, entry.guard_id, entry))
                        if len(best) == k:
                            bound_sq = -best[0][0]
                    else:
                        heapq.heapreplace(best, (-d_sq, entry.guard_id, entry))
                        bound_sq = -best[0][0]
        best.sort(key=lambda item: (-item[0], item[1]))
        return [Nearby(e, haversine_m(lat, lon, e.lat, e.lon)) for _, _, e in best]

    def within(
        self,
        lat: float,
        lon: float,
        *,
        radius_m: float,
        now: float,
        accept: Callable[[GuardEntry], bool] | None = None,
    ) -> list[Nearby]:
        """Every dispatchable guard within radius_m (unordered); for ranking by ETA."""
        return self.nearest(lat, lon, k=1_000_000, radius_m=radius_m, now=now, accept=accept)


def _ring(ci: int, cj: int, ring: int) -> Iterator[tuple[int, int]]:
    if ring == 0:
        yield (ci, cj)
        return
    for dj in range(-ring, ring + 1):
        yield (ci - ring, cj + dj)
        yield (ci + ring, cj + dj)
    for di in range(-ring + 1, ring):
        yield (ci + di, cj - ring)
        yield (ci + di, cj + ring)
