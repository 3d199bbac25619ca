"""The live index: every on-duty guard's latest position in memory, in a grid of cells.

A query walks rings of cells outwards from the query point and stops as soon as no
unvisited cell can hold anything nearer than what it already has, so it touches only
the neighbourhood, never every guard. Distances use a local equirectangular frame
centred on the query point: within 10 km they differ from haversine by under 0.1 %.
"""

from __future__ import annotations

import math
from array import array
from bisect import insort
from collections.abc import Callable, Iterator
from operator import itemgetter
from typing import Any, NamedTuple

from app.geo.distance import METRES_PER_DEGREE_LAT, metres_per_degree_lon

# A cell's key is one int, row * _ROW + column: cheaper to hash than a tuple. Columns stay
# within ±2**22 for any cell of 10 m or more, so keys never collide.
_ROW = 1 << 23


def _readiness_input(slot: str) -> Any:
    """A GuardEntry attribute whose every change recomputes `ready_until`."""

    def get(entry: GuardEntry) -> Any:
        return getattr(entry, slot)

    def set_(entry: GuardEntry, value: Any) -> None:
        setattr(entry, slot, value)
        entry._refresh()

    return property(get, set_)


class GuardEntry:
    """One guard as the index sees it; mutated in place as pings arrive.

    `ready_until` folds duty, eligibility, engagement, a dropped socket and licence expiry
    into the one number a query compares with the clock; the flags' setters keep it current.
    `activity` says what an engaged guard is doing (`offered`, `en_route`, `on_scene`) and
    `incident_id` on what; consoles show both.
    """

    __slots__ = (
        "guard_id",
        "company_id",
        "skills",
        "speed_mps",
        "lat",
        "lon",
        "accuracy_m",
        "located_at",
        "seen_at",
        "connected",
        "incident_id",
        "cell",
        "slot",
        "ready_until",
        "_on_duty",
        "_eligible",
        "_activity",
        "_dropped",
        "_eligible_until",
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
        self.lat = 0.0
        self.lon = 0.0
        self.accuracy_m: float | None = None
        self.located_at = 0.0  # device time of the last accepted ping, epoch s
        self.seen_at = 0.0  # server time it arrived, epoch s
        self.connected = False  # its socket is open on this process
        self.incident_id: str | None = None  # what its offer or assignment is about
        self.cell: int | None = None  # key of the grid cell holding it, when placed
        self.slot = 0  # its index within that cell
        self._on_duty = False
        self._eligible = eligible  # guard and company active
        # offered / en_route / on_scene while it holds an offer or assignment, else None
        # (a hint kept after commit; the database decides).
        self._activity: str | None = None
        # Its socket closed on this process: not dispatchable until it connects again. A
        # guard restored from the database on start is not dropped, only not connected.
        self._dropped = False
        self._eligible_until = eligible_until  # epoch s: certificate / licence expiry
        self._refresh()

    def _refresh(self) -> None:
        ready = self._on_duty and self._eligible and self._activity is None and not self._dropped
        self.ready_until = self._eligible_until if ready else 0.0

    on_duty = _readiness_input("_on_duty")
    eligible = _readiness_input("_eligible")
    activity = _readiness_input("_activity")
    dropped = _readiness_input("_dropped")
    eligible_until = _readiness_input("_eligible_until")

    @property
    def engaged(self) -> bool:
        """Holds an offer or an assignment."""
        return self._activity is not None


class Nearby(NamedTuple):
    entry: GuardEntry
    distance_m: float


_REGISTRY_FACTS = ("company_id", "skills", "speed_mps", "eligible", "eligible_until")


class _Cell:
    """The guards in one grid cell, their coordinates packed side by side so a query reads
    them without visiting each guard's object (most guards a query sees are too far)."""

    __slots__ = ("lats", "lons", "entries")

    def __init__(self) -> None:
        self.lats = array("d")
        self.lons = array("d")
        self.entries: list[GuardEntry] = []

    def add(self, entry: GuardEntry) -> None:
        entry.slot = len(self.entries)
        self.lats.append(entry.lat)
        self.lons.append(entry.lon)
        self.entries.append(entry)

    def discard(self, entry: GuardEntry) -> None:
        """Remove by moving the last guard into the freed slot."""
        slot, last = entry.slot, self.entries[-1]
        self.entries[slot], self.lats[slot], self.lons[slot] = last, last.lat, last.lon
        last.slot = slot
        self.entries.pop()
        self.lats.pop()
        self.lons.pop()


class LiveIndex:
    """Grid index of on-duty guard positions. Single-threaded: call from the event loop.

    Every change made through its methods adds the guard's id to `changed`, which the
    positions feed takes once per tick: it never has to scan every guard to find movement.
    """

    def __init__(self, cell_m: float = 250.0, freshness_s: float = 120.0) -> None:
        self.cell_deg = cell_m / METRES_PER_DEGREE_LAT
        self.freshness_s = freshness_s
        self.entries: dict[str, GuardEntry] = {}
        self.changed: set[str] = set()  # bounded by the number of guards
        self._cells: dict[int, _Cell] = {}

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[GuardEntry]:
        return iter(self.entries.values())

    def get(self, guard_id: str) -> GuardEntry | None:
        return self.entries.get(guard_id)

    def put(self, entry: GuardEntry) -> GuardEntry:
        """Add a guard, or update the registry facts of the one already indexed, which
        keeps its identity (sockets hold it), position, duty and flags. Returns the entry
        that is in the index."""
        self.changed.add(entry.guard_id)
        current = self.entries.get(entry.guard_id)
        if current is None:
            self.entries[entry.guard_id] = entry
            if entry.on_duty and entry.seen_at:
                self._place(entry)
            return entry
        for attr in _REGISTRY_FACTS:
            setattr(current, attr, getattr(entry, attr))
        return current

    def remove(self, guard_id: str) -> None:
        entry = self.entries.pop(guard_id, None)
        if entry is not None:
            self.changed.add(guard_id)
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
        self.changed.add(entry.guard_id)
        if entry._on_duty:
            self._place(entry)

    def set_duty(self, entry: GuardEntry, on_duty: bool) -> None:
        entry.on_duty = on_duty
        self.changed.add(entry.guard_id)
        if on_duty and entry.seen_at:
            self._place(entry)
        elif not on_duty:
            self._unplace(entry)

    def connect(self, entry: GuardEntry) -> None:
        """The guard's socket is open on this process."""
        entry.connected = True
        entry.dropped = False
        self.changed.add(entry.guard_id)

    def mark_stale(self, entry: GuardEntry) -> None:
        """The guard's connection dropped: not dispatchable until it connects again. Its
        last position and when it was seen are kept (consoles show it offline there)."""
        entry.connected = False
        entry.dropped = True
        self.changed.add(entry.guard_id)

    def engage(self, entry: GuardEntry, activity: str | None, incident_id: str | None) -> None:
        """What the guard now does (offered / en_route / on_scene, None: free) and on what."""
        entry.activity = activity
        entry.incident_id = incident_id
        self.changed.add(entry.guard_id)

    def _place(self, entry: GuardEntry) -> None:
        cell_deg = self.cell_deg
        key = math.floor(entry.lat / cell_deg) * _ROW + math.floor(entry.lon / cell_deg)
        if entry.cell == key:
            cell = self._cells[key]
            cell.lats[entry.slot], cell.lons[entry.slot] = entry.lat, entry.lon
            return
        self._unplace(entry)
        cell = self._cells.get(key)
        if cell is None:
            cell = self._cells[key] = _Cell()
        cell.add(entry)
        entry.cell = key

    def _unplace(self, entry: GuardEntry) -> None:
        if entry.cell is not None:
            cell = self._cells[entry.cell]
            cell.discard(entry)
            if not cell.entries:
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
        """Up to k dispatchable guards within radius_m, nearest first (ties by guard id)."""
        if k <= 0:
            return []
        fresh_after = now - self.freshness_s
        cell_deg = self.cell_deg
        m_lat = METRES_PER_DEGREE_LAT
        m_lon = metres_per_degree_lon(lat)
        y, x = lat / cell_deg, lon / cell_deg
        ci, cj = math.floor(y), math.floor(x)
        frame = _Frame(ci, cj, cell_deg * m_lat, cell_deg * m_lon, y - ci, x - cj)
        cells = self._cells
        ready: list[tuple[float, str, GuardEntry]] = []  # nearest first
        bound_sq = radius_m * radius_m
        ring = 0
        while (step := frame.next_cells(ring, bound_sq)) is not None:
            keys, ring = step
            near: list[tuple[float, int, list[GuardEntry]]] = []
            append = near.append
            for key in keys:
                cell = cells.get(key)
                if cell is None:
                    continue
                entries = cell.entries
                for slot, cell_lat, cell_lon in zip(
                    range(len(entries)), cell.lats, cell.lons, strict=True
                ):
                    dy = (cell_lat - lat) * m_lat
                    dx = (cell_lon - lon) * m_lon
                    d_sq = dx * dx + dy * dy
                    if d_sq <= bound_sq:
                        append((d_sq, slot, entries))
            if not near:
                continue
            # Nearest first, look at each guard only until k are in hand.
            near.sort(key=_DISTANCE)
            for d_sq, slot, entries in near:
                if len(ready) >= k and d_sq > ready[k - 1][0]:
                    break
                entry = entries[slot]
                if (
                    entry.ready_until > now
                    and entry.seen_at >= fresh_after
                    and (accept is None or accept(entry))
                ):
                    insort(ready, (d_sq, entry.guard_id, entry))
            if len(ready) >= k:
                bound_sq = ready[k - 1][0]  # nothing farther can enter: shrink the disc
        sqrt, new = math.sqrt, tuple.__new__
        return [new(Nearby, (entry, sqrt(d_sq))) for d_sq, _, entry in ready[:k]]

    def within(
        self,
        lat: float,
        lon: float,
        *,
        radius_m: float,
        now: float,
        accept: Callable[[GuardEntry], bool] | None = None,
    ) -> list[Nearby]:
        """Every dispatchable guard within radius_m, nearest first; for ranking by ETA."""
        return self.nearest(
            lat, lon, k=len(self.entries), radius_m=radius_m, now=now, accept=accept
        )


class _Frame:
    """The grid around one query point: which cells of each ring can hold a point nearer
    than a bound. Rings are squares of cells `ring` steps out from the point's own cell;
    a ring's four sides are trimmed to the cells whose nearest corner lies within reach."""

    __slots__ = ("ci", "cj", "cell_h", "cell_w", "south", "north", "west", "east")

    def __init__(
        self, ci: int, cj: int, cell_h: float, cell_w: float, up: float, across: float
    ) -> None:
        """(ci, cj): the point's cell; up, across: where in it the point lies, 0 to 1."""
        self.ci, self.cj = ci, cj
        self.cell_h, self.cell_w = cell_h, cell_w
        # Metres from the point to the four edges of its own cell.
        self.south, self.north = up * cell_h, (1.0 - up) * cell_h
        self.west, self.east = across * cell_w, (1.0 - across) * cell_w

    def next_cells(self, ring: int, bound_sq: float) -> tuple[list[int], int] | None:
        """Keys of the cells of ring `ring` that may lie within sqrt(bound_sq), and the ring
        to look at next; None once no cell of this ring or any further one can. The point's
        own cell comes with its neighbours when they are wholly within reach."""
        ci, cj = self.ci, self.cj
        h, w = self.cell_h, self.cell_w
        if ((ring + 1) * (h + w)) ** 2 <= bound_sq:  # the whole ring is within reach
            base = ci * _ROW + cj
            if ring == 0 and (2 * (h + w)) ** 2 <= bound_sq:
                return [base + offset for offset in _WHOLE_SQUARE_1], 2
            return [base + offset for offset in _whole_ring(ring)], ring + 1
        if ring == 0:
            return [ci * _ROW + cj], 1
        beyond_h, beyond_w = (ring - 1) * h, (ring - 1) * w
        north, south = self.north + beyond_h, self.south + beyond_h
        east, west = self.east + beyond_w, self.west + beyond_w
        if min(north, south, east, west) ** 2 > bound_sq:
            return None
        keys: list[int] = []
        for row, dy in ((ci + ring, north), (ci - ring, south)):
            if dy * dy <= bound_sq:
                reach = math.sqrt(bound_sq - dy * dy)
                first = row * _ROW + cj - _span(reach, self.west, w, ring)
                keys.extend(range(first, row * _ROW + cj + _span(reach, self.east, w, ring) + 1))
        for column, dx in ((cj - ring, west), (cj + ring, east)):
            if dx * dx <= bound_sq:
                reach = math.sqrt(bound_sq - dx * dx)
                low = ci - _span(reach, self.south, h, ring - 1)
                high = ci + _span(reach, self.north, h, ring - 1)
                keys.extend(row * _ROW + column for row in range(low, high + 1))
        return keys, ring + 1


_DISTANCE = itemgetter(0)
_WHOLE_RINGS: list[tuple[int, ...]] = []


def _whole_ring(ring: int) -> tuple[int, ...]:
    """Key offsets of every cell in the square ring `ring` steps out."""
    while len(_WHOLE_RINGS) <= ring:
        r = len(_WHOLE_RINGS)
        _WHOLE_RINGS.append(
            tuple(
                di * _ROW + dj
                for di in range(-r, r + 1)
                for dj in range(-r, r + 1)
                if max(abs(di), abs(dj)) == r
            )
        )
    return _WHOLE_RINGS[ring]


_WHOLE_SQUARE_1 = _whole_ring(0) + _whole_ring(1)


def _span(reach: float, gap: float, size: float, limit: int) -> int:
    """How many cells past the point's own, in one direction, start within reach metres."""
    if reach < gap:
        return 0
    return min(limit, 1 + int((reach - gap) / size))
