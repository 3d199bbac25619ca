"""Bounding boxes in GeoJSON order (west, south, east, north), antimeridian included."""

from __future__ import annotations

import math
from typing import Any, NamedTuple


class BBox(NamedTuple):
    """A lon/lat box; west > east means it crosses the antimeridian."""

    west: float
    south: float
    east: float
    north: float

    def contains(self, lat: float, lon: float) -> bool:
        if not self.south <= lat <= self.north:
            return False
        if self.west <= self.east:
            return self.west <= lon <= self.east
        return lon >= self.west or lon <= self.east


def bbox_from_values(values: Any) -> BBox:
    """A BBox from four numbers [west, south, east, north]; ValueError says what is wrong."""
    if not isinstance(values, list | tuple) or len(values) != 4:
        raise ValueError("must be four numbers: west,south,east,north")
    numbers: list[float] = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError("must be four numbers: west,south,east,north")
        if not math.isfinite(value):
            raise ValueError("numbers must be finite")
        numbers.append(float(value))
    west, south, east, north = numbers
    for name, lon in (("west", west), ("east", east)):
        if not -180 <= lon <= 180:
            raise ValueError(f"{name} must be a longitude between -180 and 180")
    for name, lat in (("south", south), ("north", north)):
        if not -90 <= lat <= 90:
            raise ValueError(f"{name} must be a latitude between -90 and 90")
    if south > north:
        raise ValueError("south must not be greater than north")
    return BBox(west, south, east, north)


def parse_bbox(text: str) -> BBox:
    """A BBox from the query form 'west,south,east,north'; ValueError says what is wrong."""
    parts = text.split(",")
    if len(parts) != 4:
        raise ValueError("must be four numbers: west,south,east,north")
    try:
        numbers = [float(part) for part in parts]
    except ValueError:
        raise ValueError("must be four numbers: west,south,east,north") from None
    return bbox_from_values(numbers)
