"""Which guards the simulator plays, and where each one's post is."""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from app.demo import tianjin
from app.simulate.config import Bounds


@dataclass(frozen=True)
class Recruit:
    """A guard to simulate: its id, name, skills and post (lat, lon)."""

    guard_id: str
    name: str
    skills: list[str]
    post: tuple[float, float]


@lru_cache(maxsize=1)
def demo_posts() -> dict[str, tuple[float, float]]:
    """The demo city's posts by badge number (seed positions do not depend on the date)."""
    return {g.badge_no: (g.lat, g.lon) for g in tianjin.guards(dt.date(2026, 1, 1))}


def pick_guards(
    guards: list[dict[str, Any]], count: int, bounds: Bounds, rng: random.Random
) -> list[Recruit]:
    """`count` guards, demo guards (whose posts are known) first, in a reproducible order.

    A guard without a known post gets one at a random point inside `bounds`.
    """
    posts = demo_posts()
    ordered = sorted(guards, key=lambda g: (g["badge_no"] not in posts, g["id"]))
    known = [g for g in ordered if g["badge_no"] in posts]
    others = [g for g in ordered if g["badge_no"] not in posts]
    chosen = rng.sample(known, min(count, len(known)))
    chosen += rng.sample(others, min(count - len(chosen), len(others)))
    return [
        Recruit(
            guard_id=str(g["id"]),
            name=str(g["name"]),
            skills=list(g.get("skills", [])),
            post=posts.get(g["badge_no"])
            or (rng.uniform(bounds.south, bounds.north), rng.uniform(bounds.west, bounds.east)),
        )
        for g in chosen
    ]
