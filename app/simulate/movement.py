"""Where a simulated guard goes: travel modes, patrol waypoints, steps along a straight path."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from app.geo.distance import METRES_PER_DEGREE_LAT, haversine_m, metres_per_degree_lon
from app.simulate.config import Bounds

FOOT_MPS = 1.4
BIKE_MPS = 4.0
VEHICLE_MPS = (8.0, 10.0)
# How far from their post a guard patrols, by mode.
PATROL_RADIUS_M = {"foot": 300.0, "bike": 800.0, "vehicle": 2000.0}


@dataclass(frozen=True)
class Mode:
    """How a guard travels: `foot`, `bike` or `vehicle`, at a steady speed."""

    name: str
    speed_mps: float


def choose_mode(skills: list[str], rng: random.Random, bike_rate: float) -> Mode:
    """Guards with a patrol vehicle drive; some of the others ride a bike; the rest walk."""
    if "patrol_vehicle" in skills:
        return Mode("vehicle", round(rng.uniform(*VEHICLE_MPS), 1))
    if rng.random() < bike_rate:
        return Mode("bike", BIKE_MPS)
    return Mode("foot", FOOT_MPS)


def offset(lat: float, lon: float, north_m: float, east_m: float) -> tuple[float, float]:
    """The point this many metres north and east of (lat, lon)."""
    return lat + north_m / METRES_PER_DEGREE_LAT, lon + east_m / metres_per_degree_lon(lat)


def patrol_waypoint(
    post: tuple[float, float], mode: Mode, bounds: Bounds, rng: random.Random
) -> tuple[float, float]:
    """A random point of the guard's beat: within the mode's patrol radius of the post."""
    radius = PATROL_RADIUS_M[mode.name] * math.sqrt(rng.random())
    bearing = rng.uniform(0, 2 * math.pi)
    lat, lon = offset(*post, radius * math.cos(bearing), radius * math.sin(bearing))
    return bounds.clamp(lat, lon)


def step_towards(
    here: tuple[float, float], target: tuple[float, float], metres: float
) -> tuple[float, float]:
    """Move up to `metres` in a straight line towards `target` (stopping on it)."""
    remaining = haversine_m(*here, *target)
    if remaining <= metres or remaining == 0:
        return target
    share = metres / remaining
    return here[0] + (target[0] - here[0]) * share, here[1] + (target[1] - here[1]) * share


def heading(here: tuple[float, float], target: tuple[float, float]) -> float:
    """Compass bearing in degrees [0, 360) from `here` to `target` (flat-earth, short range)."""
    north = (target[0] - here[0]) * METRES_PER_DEGREE_LAT
    east = (target[1] - here[1]) * metres_per_degree_lon(here[0])
    return math.degrees(math.atan2(east, north)) % 360
