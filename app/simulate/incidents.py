"""What happens in the city: incidents with a believable mix of categories and priorities."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from app.simulate.config import Bounds
from app.simulate.movement import offset

# category: (weight, priorities to pick from, descriptions)
MIX: dict[str, tuple[float, tuple[int, ...], tuple[str, ...]]] = {
    "theft": (25, (3, 3, 4), (
        "bicycle stolen from the rack by the north gate",
        "shopper reports a phone snatched in the food court",
        "shoplifter held at the supermarket exit",
    )),
    "disturbance": (15, (3, 3, 2), (
        "two drivers arguing loudly over a parking space",
        "drunk man shouting at passers-by near the bus stop",
        "neighbours quarrelling in the stairwell",
    )),
    "suspicious": (14, (3, 4), (
        "unattended bag left near the metro entrance",
        "man trying car door handles in the underground car park",
        "someone filming the bank's cash machine for a long time",
    )),
    "medical": (12, (2, 2, 1), (
        "elderly man collapsed at the east gate",
        "child with a bleeding head wound at the playground",
        "woman feeling faint in the queue, short of breath",
    )),
    "traffic": (8, (3, 2), (
        "scooter and car collided at the crossing, rider sitting on the kerb",
        "delivery van blocking the fire lane",
    )),
    "alarm": (8, (3,), (
        "intrusion alarm sounding at the jewellery shop",
        "fire panel fault alarm in the office tower lobby",
    )),
    "missing_person": (4, (2,), (
        "six-year-old boy separated from his mother at the mall",
        "elderly woman with dementia left the compound this morning",
    )),
    "assault": (5, (1, 2), (
        "fight outside the karaoke bar, one man on the ground",
        "security guard punched while stopping a fare dodger",
    )),
    "robbery": (3, (1,), ("bag snatched at knifepoint in the underpass",)),
    "fire": (3, (1,), (
        "smoke coming from a restaurant kitchen window",
        "electric scooter battery burning in the bicycle shed",
    )),
    "other": (3, (4,), ("lost wallet handed in at the guard post",)),
}  # fmt: skip
NEAR_POST_SHARE = 0.8  # most incidents happen where guards stand: malls, stations, compounds
NEAR_POST_SPREAD_M = 300.0


@dataclass(frozen=True)
class PlannedIncident:
    """One incident to post; `via_cad` means the police CAD posts it with `external_ref`;
    a drill carries `exercise: true` in its body."""

    body: dict[str, Any]
    via_cad: bool


def plan_incident(
    rng: random.Random,
    posts: list[tuple[float, float]],
    bounds: Bounds,
    *,
    number: int,
    run_tag: str,
    cad_share: float,
    drill_share: float = 0.0,
) -> PlannedIncident:
    """The `number`-th incident of the run: category, priority, place and description;
    a `drill_share` of them are drills (`exercise: true`)."""
    categories = list(MIX)
    category = rng.choices(categories, weights=[MIX[c][0] for c in categories])[0]
    _, priorities, descriptions = MIX[category]
    lat, lon = _place(rng, posts, bounds)
    body: dict[str, Any] = {
        "category": category,
        "priority": rng.choice(priorities),
        "location": {"lat": round(lat, 6), "lon": round(lon, 6)},
        "description": rng.choice(descriptions),
    }
    if drill_share > 0 and rng.random() < drill_share:  # no draw without drills: old seeds hold
        body["exercise"] = True
    via_cad = rng.random() < cad_share
    if via_cad:
        body["external_ref"] = f"SIM-{run_tag}-{number:05d}"
    return PlannedIncident(body, via_cad)


def _place(
    rng: random.Random, posts: list[tuple[float, float]], bounds: Bounds
) -> tuple[float, float]:
    if posts and rng.random() < NEAR_POST_SHARE:
        lat, lon = rng.choice(posts)
        distance = abs(rng.gauss(0, NEAR_POST_SPREAD_M))
        bearing = rng.uniform(0, 2 * math.pi)
        lat, lon = offset(lat, lon, distance * math.cos(bearing), distance * math.sin(bearing))
        return bounds.clamp(lat, lon)
    return rng.uniform(bounds.south, bounds.north), rng.uniform(bounds.west, bounds.east)


def next_gap_s(rng: random.Random, per_minute: float) -> float | None:
    """Seconds until the next incident (a Poisson process), or None when none are wanted."""
    if per_minute <= 0:
        return None
    return rng.expovariate(per_minute / 60.0)
