"""Distance filters in SQL (the same expression on PostgreSQL and SQLite ≥ 3.35)."""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import ColumnElement, and_, func

from app.geo.distance import EARTH_RADIUS_M, METRES_PER_DEGREE_LAT, metres_per_degree_lon


def within_radius(
    lat_col: Any, lon_col: Any, lat: float, lon: float, radius_m: float
) -> ColumnElement[bool]:
    """Rows within `radius_m` of a point: a bounding box (index-friendly), then haversine."""
    dlat = radius_m / METRES_PER_DEGREE_LAT
    dlon = min(180.0, radius_m / metres_per_degree_lon(lat))
    phi = math.radians(lat)
    haversine = (
        2
        * EARTH_RADIUS_M
        * func.asin(
            func.sqrt(
                func.power(func.sin((func.radians(lat_col) - phi) / 2), 2)
                + math.cos(phi)
                * func.cos(func.radians(lat_col))
                * func.power(func.sin((func.radians(lon_col) - math.radians(lon)) / 2), 2)
            )
        )
    )
    return and_(
        lat_col.between(lat - dlat, lat + dlat),
        lon_col.between(lon - dlon, lon + dlon),
        haversine <= radius_m,
    )
