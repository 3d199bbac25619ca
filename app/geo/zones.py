"""Police jurisdictions: GeoJSON validation and the point → responsible station lookup.

Rule for a point covered by several jurisdictions: the smallest polygon wins (the most
specific precinct), ties go to the lowest station id. A point outside every jurisdiction
goes to the nearest one, and the match says `nearest`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import shapely
from shapely import affinity
from shapely.geometry import MultiPolygon, Point, Polygon, shape
from shapely.ops import nearest_points
from shapely.validation import explain_validity

from app.geo.distance import METRES_PER_DEGREE_LAT, haversine_m, metres_per_degree_lon

MAX_VERTICES = 20_000


class InvalidGeometry(ValueError):
    """A jurisdiction that is not a valid RFC 7946 (Multi)Polygon; the message says why."""


def parse_jurisdiction(geojson: Any) -> Polygon | MultiPolygon:
    """Validate a GeoJSON Polygon/MultiPolygon in WGS84 and return it as shapely geometry."""
    if not isinstance(geojson, dict):
        raise InvalidGeometry("must be a GeoJSON object")
    kind = geojson.get("type")
    if kind not in ("Polygon", "MultiPolygon"):
        raise InvalidGeometry("type must be 'Polygon' or 'MultiPolygon'")
    extra = set(geojson) - {"type", "coordinates", "bbox"}
    if extra:
        raise InvalidGeometry(f"unexpected members {sorted(extra)}")
    coordinates = geojson.get("coordinates")
    polygons = [coordinates] if kind == "Polygon" else coordinates
    if not isinstance(polygons, list) or not polygons:
        raise InvalidGeometry("coordinates must be a non-empty array")
    vertices = 0
    for p_index, rings in enumerate(polygons):
        if not isinstance(rings, list) or not rings:
            raise InvalidGeometry(f"polygon {p_index} must be a non-empty array of rings")
        for r_index, ring in enumerate(rings):
            where = f"polygon {p_index} ring {r_index}"
            _check_ring(ring, where)
            vertices += len(ring)
    if vertices > MAX_VERTICES:
        raise InvalidGeometry(f"too many vertices ({vertices} > {MAX_VERTICES})")
    geometry = shape(geojson)
    if geometry.is_empty or geometry.area <= 0:
        raise InvalidGeometry("polygon has no area")
    if not geometry.is_valid:
        raise InvalidGeometry(f"invalid polygon: {explain_validity(geometry)}")
    return geometry


def _check_ring(ring: Any, where: str) -> None:
    if not isinstance(ring, list) or len(ring) < 4:
        raise InvalidGeometry(f"{where} needs at least 4 positions")
    for position in ring:
        if (
            not isinstance(position, list)
            or len(position) not in (2, 3)
            or not all(
                isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
                for v in position
            )
        ):
            raise InvalidGeometry(f"{where} has a position that is not [lon, lat] numbers")
        lon, lat = position[0], position[1]
        if not -180 <= lon <= 180 or not -90 <= lat <= 90:
            raise InvalidGeometry(f"{where} has a position outside WGS84 ranges: {position}")
    if ring[0][:2] != ring[-1][:2]:
        raise InvalidGeometry(f"{where} is not closed (first and last positions differ)")


@dataclass(frozen=True)
class Jurisdiction:
    station_id: str
    match: Literal["contains", "nearest"]
    distance_m: float  # 0 inside, else the distance to the nearest boundary


class JurisdictionIndex:
    """Prepared jurisdiction polygons in an STRtree; rebuilt when a station changes."""

    def __init__(self) -> None:
        self._geometries: dict[str, Polygon | MultiPolygon] = {}
        self._tree: shapely.STRtree | None = None
        self._ids: list[str] = []
        self._areas: list[float] = []

    def __len__(self) -> int:
        return len(self._geometries)

    def put(self, station_id: str, geometry: Polygon | MultiPolygon) -> None:
        self._geometries[station_id] = geometry
        self._rebuild()

    def load(self, stations: dict[str, Polygon | MultiPolygon]) -> None:
        self._geometries = dict(stations)
        self._rebuild()

    def _rebuild(self) -> None:
        self._ids = sorted(self._geometries)
        geometries = [self._geometries[i] for i in self._ids]
        for geometry in geometries:
            shapely.prepare(geometry)
        self._areas = [g.area for g in geometries]
        self._tree = shapely.STRtree(geometries) if geometries else None

    def locate(self, lat: float, lon: float) -> Jurisdiction | None:
        """The station responsible for a point, or None when no station exists."""
        if self._tree is None:
            return None
        point = Point(lon, lat)
        hits = self._tree.query(point, predicate="intersects")
        if len(hits):
            best = min(hits, key=lambda i: (self._areas[i], self._ids[i]))
            return Jurisdiction(self._ids[best], "contains", 0.0)
        return self._nearest(point)

    def _nearest(self, point: Point) -> Jurisdiction:
        assert self._tree is not None
        first = int(self._tree.nearest(point))
        bound = self._distance_m(point, first)
        # Degrees of longitude are shorter than degrees of latitude: any polygon closer
        # than `bound` metres lies within this many degrees on the planar tree.
        reach = bound / metres_per_degree_lon(point.y) + 1e-9
        candidates = self._tree.query(point, predicate="dwithin", distance=reach)
        best = min(
            ((self._distance_m(point, int(i)), self._ids[int(i)]) for i in candidates),
            default=(bound, self._ids[first]),
        )
        return Jurisdiction(best[1], "nearest", best[0])

    def _distance_m(self, point: Point, index: int) -> float:
        geometry = self._geometries[self._ids[index]]
        # Nearest point in a local equirectangular frame, then the true distance to it.
        x_scale = metres_per_degree_lon(point.y) / METRES_PER_DEGREE_LAT
        local = affinity.scale(geometry, xfact=x_scale, yfact=1.0, origin=(point.x, point.y))
        _, on_boundary = nearest_points(point, local)
        lon = point.x + (on_boundary.x - point.x) / x_scale
        return haversine_m(point.y, point.x, on_boundary.y, lon)
