"""Great-circle distances in metres from WGS84 lat/lon (haversine on a spherical Earth)."""

from __future__ import annotations

import math

EARTH_RADIUS_M = 6_371_008.8  # mean Earth radius (IUGG)
METRES_PER_DEGREE_LAT = math.pi * EARTH_RADIUS_M / 180.0


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Distance between two points in metres; error under 0.5 % against the ellipsoid."""
    phi1 = math.radians(lat1)
    phi2 = math.radians(lat2)
    dphi = phi2 - phi1
    dlmb = math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def metres_per_degree_lon(lat: float) -> float:
    """Length of one degree of longitude at this latitude (never below 1 m near the poles)."""
    return max(1.0, METRES_PER_DEGREE_LAT * math.cos(math.radians(lat)))
