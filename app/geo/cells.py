"""The live index's grid: which cell holds a point, and which cells a search must visit.

Cells are about `cell_m` across everywhere on the globe, in one of three planes:

- the band, |lat| ≤ 60°: rows `cell_m` high, columns of one fixed longitude width (at least
  half of `cell_m` wide at 60°), numbered 0..columns-1 eastwards from -180°, so the
  antimeridian is only the seam between the last column and the first;
- the two polar caps, |lat| > 60°: squares of `cell_m` in the plane of the equator, onto which
  a point is projected straight down (the x, y of its earth-centred position). Columns of a
  fixed longitude width would shrink to slivers towards a pole (0.4 m at 89.9°), and a search
  there would visit millions of them.

A search walks square rings of cells outwards in one of these planes (`RingWalk`), trimmed to
the cells whose nearest point lies within reach, and the index ranks guards by the straight
line (chord) through the Earth, which orders them exactly as the great-circle distance does.
Trimming is exact only if a distance in the plane never exceeds the chord:

- in a cap the projection only ever shortens distances, so it holds as is;
- in the band, column widths are measured at the latitude within reach where meridians are
  closest, and the reach is widened by `BAND_SLACK` for the difference between arcs and their
  chords. That is proved for search angles up to `MAX_WALK_ANGLE` (see `Grid.walks`); wider
  searches scan every occupied cell instead.
"""

from __future__ import annotations

import math

from app.geo.distance import EARTH_RADIUS_M, METRES_PER_DEGREE_LAT

# key = row * ROW + column; |column| < 2**23 (4.0 M columns for the smallest 10 m cells, plus a
# search's overhang past the seam), so keys are unique ints, cheaper to hash than tuples.
ROW = 1 << 24
_HALF_ROW = 1 << 23
# Cap keys sit far past any band key (|band key| < 2**44).
NORTH = 1 << 58
SOUTH = -(1 << 58)
BAND_LAT = 60.0
# The band's plane distance exceeds the chord by under 0.17 % within MAX_WALK_ANGLE: reach is
# widened by 0.2 % (and a micrometre for rounding) so no cell that may hold a hit is trimmed.
BAND_SLACK = 1.002
MAX_WALK_ANGLE = 0.1  # radians (637 km)
_DEG = 180.0 / math.pi
_EPS_DEG = 1e-9
_PER_RADIUS = 1.0 / EARTH_RADIUS_M


class Grid:
    """Cell keys for one cell size."""

    __slots__ = ("cell_m", "cell_deg", "columns", "column_deg")

    def __init__(self, cell_m: float) -> None:
        self.cell_m = cell_m
        self.cell_deg = cell_m / METRES_PER_DEGREE_LAT
        # A whole number of columns round the globe, so column indices wrap modulo it.
        self.columns = max(1, round(360.0 / self.cell_deg))
        self.column_deg = 360.0 / self.columns

    def key(self, lat: float, lon: float, x: float, y: float) -> int:
        """The cell of a point at (lat, lon), whose earth-centred position is (x, y, ·)."""
        if lat > BAND_LAT:
            return NORTH + math.floor(x / self.cell_m) * ROW + math.floor(y / self.cell_m)
        if lat < -BAND_LAT:
            return SOUTH + math.floor(x / self.cell_m) * ROW + math.floor(y / self.cell_m)
        column = math.floor((lon + 180.0) / self.column_deg) % self.columns
        return math.floor(lat / self.cell_deg) * ROW + column

    def walks(
        self, lat: float, lon: float, x: float, y: float, z: float, angle: float
    ) -> tuple[RingWalk, ...] | None:
        """The ring walks that together cover every point within `angle` radians of (lat, lon),
        whose earth-centred position is (x, y, z); None when the angle is too wide for them to
        be exact (scan every cell instead)."""
        if angle > MAX_WALK_ANGLE:
            return None
        reach_deg = angle * _DEG + _EPS_DEG
        north = lat + reach_deg > BAND_LAT
        south = lat - reach_deg < -BAND_LAT
        if abs(lat) - reach_deg > BAND_LAT:  # the disc lies wholly in one cap
            return (self._cap(NORTH if north else SOUTH, x, y),)
        band = self._band(lat, lon, x, y, z, angle)
        if band is None:
            return None
        if north:
            return band, self._cap(NORTH, x, y)
        if south:
            return band, self._cap(SOUTH, x, y)
        return (band,)

    def _cap(self, base: int, x: float, y: float) -> RingWalk:
        size = self.cell_m
        u, v = x / size, y / size
        ci, cj = math.floor(u), math.floor(v)
        return RingWalk(base, ci, cj, size, size, u - ci, v - cj, 0)

    def _band(
        self, lat: float, lon: float, x: float, y: float, z: float, angle: float
    ) -> RingWalk | None:
        # Why the band's plane may stand in for the chord: for a point within angle δ of the
        # query (haversine), 4 sin²(δ/2) = 4 sin²(Δφ/2) + cos φq cos φ · 4 sin²(Δλ/2), where
        # cos φ ≥ c_min (band points lie within 60° and within δ of φq). So the plane with
        # columns scaled by sqrt(cos φq c_min) gives at most δ / sqrt(1 - Λ²/12), Λ bounding
        # |Δφ| and |Δλ|; and the arc δ exceeds its chord by under 0.042 % while δ ≤ 0.1. With
        # Λ ≤ 0.1 the two together stay under BAND_SLACK.
        cos_lat = math.sqrt(x * x + y * y) * _PER_RADIUS
        # cos(|φq| + δ) ≥ cos φq (1 - δ²/2) - sin|φq| δ: a lower bound without trigonometry.
        c_min = max(cos_lat * (1.0 - angle * angle / 2) - abs(z) * _PER_RADIUS * angle, 0.5)
        scale = math.sqrt(cos_lat * c_min)
        # |Δλ| ≤ 2 asin(sin(δ/2) / scale) ≤ π (δ/2) / scale
        if scale * MAX_WALK_ANGLE < math.pi * angle / 2:
            return None
        max_dlon = math.pi * angle / 2 / scale
        u, v = lat / self.cell_deg, (lon + 180.0) / self.column_deg
        ci, cj = math.floor(u), math.floor(v)
        # Columns the walk may reach either side; past the seam they wrap round the globe.
        overhang = max_dlon * _DEG / self.column_deg + 2
        wraps = cj - overhang < 0 or cj + overhang >= self.columns
        cell_w = self.column_deg * METRES_PER_DEGREE_LAT * scale
        return RingWalk(0, ci, cj, self.cell_m, cell_w, u - ci, v - cj, self.columns * wraps)


class RingWalk:
    """The cells around one query point in one plane: which cells of each ring can hold a
    point nearer than a bound. Rings are squares of cells `ring` steps out from the point's
    own cell; a ring's four sides are trimmed to the cells whose nearest corner lies within
    reach."""

    __slots__ = ("origin", "cell_h", "cell_w", "south", "north", "west", "east", "columns")

    def __init__(
        self,
        base: int,
        ci: int,
        cj: int,
        cell_h: float,
        cell_w: float,
        up: float,
        across: float,
        columns: int,
    ) -> None:
        """(ci, cj): the point's cell; up, across: where in it the point lies, 0 to 1;
        columns: wrap column indices modulo this (0: no wrapping)."""
        self.origin = base + ci * ROW + cj
        self.cell_h, self.cell_w = cell_h, cell_w
        # Metres from the point to the four edges of its own cell.
        self.south, self.north = up * cell_h, (1.0 - up) * cell_h
        self.west, self.east = across * cell_w, (1.0 - across) * cell_w
        self.columns = columns

    def next_cells(self, ring: int, bound_sq: float) -> tuple[list[int], int] | None:
        """Keys of the cells of ring `ring` that may lie within sqrt(bound_sq), and the ring
        to look at next; None once no cell of this ring or any further one can. The point's
        own cell comes with its neighbours when they are wholly within reach."""
        origin = self.origin
        h, w = self.cell_h, self.cell_w
        if ((ring + 1) * (h + w)) ** 2 <= bound_sq:  # the whole ring is within reach
            if ring == 0 and (2 * (h + w)) ** 2 <= bound_sq:
                keys, ring = [origin + offset for offset in _WHOLE_SQUARE_1], 1
            else:
                keys = [origin + offset for offset in _whole_ring(ring)]
        elif ring == 0:
            keys = [origin]
        else:
            beyond_h, beyond_w = (ring - 1) * h, (ring - 1) * w
            north, south = self.north + beyond_h, self.south + beyond_h
            east, west = self.east + beyond_w, self.west + beyond_w
            if min(north, south, east, west) ** 2 > bound_sq:
                return None
            keys = []
            for row, dy in ((origin + ring * ROW, north), (origin - ring * ROW, south)):
                if dy * dy <= bound_sq:
                    reach = math.sqrt(bound_sq - dy * dy)
                    first = row - _span(reach, self.west, w, ring)
                    keys.extend(range(first, row + _span(reach, self.east, w, ring) + 1))
            for column, dx in ((origin - ring, west), (origin + ring, east)):
                if dx * dx <= bound_sq:
                    reach = math.sqrt(bound_sq - dx * dx)
                    low = _span(reach, self.south, h, ring - 1)
                    high = _span(reach, self.north, h, ring - 1)
                    keys.extend(range(column - low * ROW, column + high * ROW + 1, ROW))
        if self.columns:
            keys = [_wrap(key, self.columns) for key in keys]
        return keys, ring + 1


def _wrap(key: int, columns: int) -> int:
    """A band key whose column ran past the seam, brought back into 0..columns-1."""
    row = (key + _HALF_ROW) >> 24
    return row * ROW + (key - row * ROW) % columns


_WHOLE_RINGS: list[tuple[int, ...]] = []


def _whole_ring(ring: int) -> tuple[int, ...]:
    """Key offsets of every cell in the square ring `ring` steps out."""
    while len(_WHOLE_RINGS) <= ring:
        r = len(_WHOLE_RINGS)
        _WHOLE_RINGS.append(
            tuple(
                di * ROW + dj
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
