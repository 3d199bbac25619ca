"""The live index: every on-duty guard's latest position in memory, in a grid of cells.

A query walks rings of cells outwards from the query point and stops as soon as no
unvisited cell can hold anything nearer than what it already has, so it touches only
the neighbourhood, never every guard; the grid (app.geo.cells) keeps cells about the same
size everywhere, so a query at a pole or on the antimeridian costs what it does in a city.
Guards are ranked by the chord between earth-centred positions, which orders them exactly
as the great-circle distance does; the distances returned are great-circle (haversine)
metres on the spherical Earth, at every latitude.
"""

from __future__ import annotations

import math
from array import array
from bisect import insort
from collections.abc import Callable, Iterator
from math import cos, sin
from operator import itemgetter
from typing import Any, NamedTuple

from app.geo.cells import BAND_SLACK, Grid
from app.geo.distance import EARTH_RADIUS_M, surface_xyz

# A cell: its guards' earth-centred positions packed side by side (x, y, z for each, in
# metres), and the guards in the same order. A query reads the packed coordinates and never
# touches a guard's object unless it is among the nearest: most guards a query sees are too
# far, and touching each one's object (even to count a reference) costs a cache miss.
_Cell = tuple[array, list["GuardEntry"]]
_RAD = math.pi / 180.0


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


class LiveIndex:
    """Grid index of on-duty guard positions. Single-threaded: call from the event loop.

    Every change made through its methods adds the guard's id to `changed`, which the
    positions feed takes once per tick: it never has to scan every guard to find movement.
    """

    def __init__(self, cell_m: float = 250.0, freshness_s: float = 120.0) -> None:
        self.freshness_s = freshness_s
        self.entries: dict[str, GuardEntry] = {}
        self.changed: set[str] = set()  # bounded by the number of guards
        self._grid = Grid(cell_m)
        self._cells: dict[int, _Cell] = {}
        # A walk that has visited more cells than this (None: twice the occupied cells, at
        # least 256) stops and scans every occupied cell instead: a search over an empty
        # region or a very wide radius costs at most about one pass over the index.
        self.scan_after_cells: int | None = None
        self.cells_visited = 0  # by the last query, walked or scanned: its work, for tests

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
        """Going off duty forgets the position: none is kept or shown while off duty, and
        back on duty the guard is placed by its first new ping."""
        entry.on_duty = on_duty
        self.changed.add(entry.guard_id)
        if on_duty and entry.seen_at:
            self._place(entry)
        elif not on_duty:
            self._unplace(entry)
            entry.lat = entry.lon = 0.0
            entry.accuracy_m = None
            entry.located_at = entry.seen_at = 0.0

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
        lat, lon = entry.lat, entry.lon
        x, y, z = surface_xyz(lat, lon)
        key = self._grid.key(lat, lon, x, y)
        if entry.cell == key:
            xyz = self._cells[key][0]
            at = 3 * entry.slot
            xyz[at], xyz[at + 1], xyz[at + 2] = x, y, z
            return
        self._unplace(entry)
        cell = self._cells.get(key)
        if cell is None:
            cell = self._cells[key] = (array("d"), [])
        xyz, entries = cell
        entry.slot = len(entries)
        xyz.extend((x, y, z))
        entries.append(entry)
        entry.cell = key

    def _unplace(self, entry: GuardEntry) -> None:
        """Take the guard out of its cell by moving the cell's last guard into its slot."""
        if entry.cell is None:
            return
        xyz, entries = self._cells[entry.cell]
        last = entries.pop()
        if last is not entry:
            slot = last.slot = entry.slot
            entries[slot] = last
            xyz[3 * slot : 3 * slot + 3] = xyz[-3:]
        del xyz[-3:]
        if not entries:
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
        if k <= 0 or not radius_m >= 0.0 or not self._cells:  # (a NaN radius: no bound)
            return []
        # surface_xyz and chord_sq_m, inline: this is the service's hottest path.
        phi, lmb = lat * _RAD, lon * _RAD
        r = EARTH_RADIUS_M * cos(phi)
        qx, qy, qz = r * cos(lmb), r * sin(lmb), EARTH_RADIUS_M * sin(phi)
        angle = radius_m / EARTH_RADIUS_M
        radius_sq = bound_sq = (EARTH_RADIUS_M * 2.0 * sin(min(angle, math.pi) / 2.0)) ** 2
        fresh_after = now - self.freshness_s
        # (chord², id, guard): the k nearest so far, nearest first
        ready: list[tuple[float, str, GuardEntry]] = []
        cells = self._cells
        get = cells.get
        budget = self.scan_after_cells
        if budget is None:
            budget = max(256, 2 * len(cells))
        visited = 0
        walks = self._grid.walks(lat, lon, qx, qy, qz, angle)
        for walk in walks or ():
            ring = 0
            # The slack makes the plane's reach cover the chord (see app.geo.cells).
            while (step := walk.next_cells(ring, bound_sq * BAND_SLACK + 1e-6)) is not None:
                keys, ring = step
                visited += len(keys)
                if visited > budget:
                    break
                near: list[tuple[float, int, list[GuardEntry]]] = []
                append = near.append
                for key in keys:
                    cell = get(key)
                    if cell is None:
                        continue
                    xyz, entries = cell
                    packed = iter(xyz)
                    for slot, x, y, z in zip(
                        range(len(entries)), packed, packed, packed, strict=True
                    ):
                        dx = x - qx
                        dy = y - qy
                        dz = z - qz
                        d_sq = dx * dx + dy * dy + dz * dz
                        if d_sq <= bound_sq:
                            append((d_sq, slot, entries))
                if near:
                    bound_sq = _admit(near, ready, k, bound_sq, now, fresh_after, accept)
            else:
                continue
            break  # over budget
        else:
            if walks is not None:
                self.cells_visited = visited
                return _answer(ready)
        # Too wide for a walk, or the walk found too little too far out: one pass over every
        # occupied cell, which bounds the cost by the size of the index.
        ready.clear()
        near = []
        for xyz, entries in cells.values():
            packed = iter(xyz)
            for slot, x, y, z in zip(range(len(entries)), packed, packed, packed, strict=True):
                dx, dy, dz = x - qx, y - qy, z - qz
                d_sq = dx * dx + dy * dy + dz * dz
                if d_sq <= radius_sq:
                    near.append((d_sq, slot, entries))
        _admit(near, ready, k, radius_sq, now, fresh_after, accept)
        self.cells_visited = visited + len(cells)
        return _answer(ready)

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


_DISTANCE = itemgetter(0)


def _admit(
    near: list[tuple[float, int, list[GuardEntry]]],
    ready: list[tuple[float, str, GuardEntry]],
    k: int,
    bound_sq: float,
    now: float,
    fresh_after: float,
    accept: Callable[[GuardEntry], bool] | None,
) -> float:
    """Add the dispatchable guards among `near` (all within the bound) to `ready`, which
    stays the k nearest so far; the new bound: the k-th nearest once k are in hand, since
    nothing farther can enter."""
    near.sort(key=_DISTANCE)  # nearest first: look at each guard only until k are in hand
    kth = ready[-1][0] if len(ready) >= k else bound_sq
    for d_sq, slot, entries in near:
        if d_sq > kth:
            break
        entry = entries[slot]
        if (
            entry.ready_until > now
            and entry.seen_at >= fresh_after
            and (accept is None or accept(entry))
        ):
            item = (d_sq, entry.guard_id, entry)
            if not ready or d_sq > ready[-1][0]:
                ready.append(item)  # the usual case: candidates come nearest first
            else:
                insort(ready, item)  # ties go by guard id
            if len(ready) >= k:
                if len(ready) > k:
                    ready.pop()
                kth = ready[-1][0]
    return kth


_DIAMETER = 2.0 * EARTH_RADIUS_M
_DIAMETER_SQ = _DIAMETER * _DIAMETER
_HALF_ROUND = math.pi * EARTH_RADIUS_M


def _answer(ready: list[tuple[float, str, GuardEntry]]) -> list[Nearby]:
    """The k nearest with their great-circle distances (an antipode's chord may round past
    the diameter, out of asin's domain)."""
    new, asin, sqrt, per_diameter = tuple.__new__, math.asin, math.sqrt, 1.0 / _DIAMETER
    return [
        new(
            Nearby,
            (
                entry,
                _DIAMETER * asin(sqrt(d_sq) * per_diameter) if d_sq < _DIAMETER_SQ else _HALF_ROUND,
            ),
        )
        for d_sq, _, entry in ready
    ]
