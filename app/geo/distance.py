"""Great-circle distances in metres from WGS84 lat/lon (haversine on a spherical Earth).

For ranking many points against one, the live index compares chords instead: the straight
line between two earth-centred positions grows with the great-circle distance, so it orders
points exactly as haversine does, everywhere (poles and antimeridian included), for three
subtractions and three products per point.
"""

from __future__ import annotations

import math

EARTH_RADIUS_M = 6_371_008.8  # mean Earth radius (IUGG)
METRES_PER_DEGREE_LAT = math.pi * EARTH_RADIUS_M / 180.0
_RAD = math.pi / 180.0


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Distance between two points in metres; error under 0.5 % against the ellipsoid."""
    phi1 = math.radians(lat1)
    phi2 = math.radians(lat2)
    dphi = phi2 - phi1
    dlmb = math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def metres_per_degree_lon(lat: float) -> float:
    """Length of one degree of longitude at this latitude, clamped to at least 1 m (reached
    within 0.0001° of a pole). Fine for converting short east–west offsets at one latitude;
    not a distance between points near a pole, where meridians converge within a few metres
    (use haversine_m, or the chords of `surface_xyz`)."""
    return max(1.0, METRES_PER_DEGREE_LAT * math.cos(math.radians(lat)))


def surface_xyz(lat: float, lon: float) -> tuple[float, float, float]:
    """Earth-centred position of a point on the sphere, metres (z towards the north pole)."""
    phi, lmb = lat * _RAD, lon * _RAD
    r = EARTH_RADIUS_M * math.cos(phi)
    return r * math.cos(lmb), r * math.sin(lmb), EARTH_RADIUS_M * math.sin(phi)


def chord_sq_m(distance_m: float) -> float:
    """Squared chord, m², of a great-circle distance (the whole diameter beyond half the globe)."""
    angle = min(distance_m / EARTH_RADIUS_M, math.pi)
    return (2.0 * EARTH_RADIUS_M * math.sin(angle / 2.0)) ** 2
