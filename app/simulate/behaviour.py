"""A simulated guard's decisions: pure functions of the situation and a random source."""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from typing import Literal

from app.simulate.config import Behaviour

Answer = Literal["accept", "decline", "silent"]
DECLINE_REASONS = (
    "already handling a visitor at the gate",
    "on a break, too far to walk",
    "post cannot be left unattended",
    "phone battery low",
)


@dataclass(frozen=True)
class OfferReply:
    """What the guard will do about an offer, and after how long (seconds)."""

    answer: Answer
    delay_s: float
    reason: str | None = None


def reply_to_offer(
    behaviour: Behaviour,
    rng: random.Random,
    *,
    busy: bool,
    now: dt.datetime,
    expires_at: dt.datetime,
) -> OfferReply:
    """Most offers are accepted after a human pause; some declined, some left unanswered.

    A guard already on an assignment declines at once; a reply is never planned past the
    offer's expiry (a late tap would only earn an `offer_closed` error).
    """
    if busy:
        return OfferReply("decline", 0.0, "already on an assignment")
    left_s = (expires_at - now).total_seconds()
    if left_s <= 0:
        return OfferReply("silent", 0.0)
    low, high = behaviour.reply_delay_s
    delay = min(rng.uniform(low, high), max(0.0, left_s - 1.0))
    draw = rng.random()
    if draw < behaviour.accept_rate:
        return OfferReply("accept", delay)
    if draw < behaviour.accept_rate + behaviour.decline_rate:
        return OfferReply("decline", delay, rng.choice(DECLINE_REASONS))
    return OfferReply("silent", 0.0)


def arrived(distance_m: float, behaviour: Behaviour) -> bool:
    """Close enough to the scene to report `on_scene`."""
    return distance_m <= behaviour.on_scene_radius_m


def clear_after(behaviour: Behaviour, rng: random.Random, priority: int) -> float:
    """Seconds on scene before reporting `cleared`; serious incidents take longer."""
    low, high = behaviour.clear_after_s
    return rng.uniform(low, high) * (1.5 if priority <= 2 else 1.0)


def drops_signal(behaviour: Behaviour, rng: random.Random, elapsed_s: float) -> bool:
    """Whether the phone loses its connection during the last `elapsed_s` seconds."""
    return rng.random() < behaviour.dropouts_per_hour * elapsed_s / 3600.0


def offline_for(behaviour: Behaviour, rng: random.Random) -> float:
    """How long a dropped phone stays silent before it reconnects and resumes."""
    return rng.uniform(*behaviour.offline_s)


# subject: what guards on a beat notice and pass to the police without calling anyone out
INTEL: dict[str, tuple[str, ...]] = {
    "suspicious_person": (
        "man in a grey hoodie checking bicycle locks along the rack, third time today",
        "two men photographing the compound's gate and camera positions",
    ),
    "suspicious_vehicle": (
        "white van without plates parked by the loading bay since the morning",
        "silver saloon circling the school at closing time, driver watching the gate",
    ),
    "hazard": (
        "loose manhole cover on the pavement by the bus stop",
        "scaffolding netting torn and flapping over the footpath",
    ),
    "wanted_sighting": (
        "man matching this morning's circulated photo bought cigarettes at the kiosk",
    ),
    "other": ("crowd gathering outside the job centre, calm for now",),
}


def reports_intel(behaviour: Behaviour, rng: random.Random, elapsed_s: float) -> bool:
    """Whether a guard on patrol notices something worth telling the police this tick."""
    return rng.random() < behaviour.intel_per_hour * elapsed_s / 3600.0


def intel_report(rng: random.Random, position: tuple[float, float]) -> dict[str, object]:
    """A `report {kind: "intel"}` frame about something at the guard's position."""
    subject = rng.choice(list(INTEL))
    return {
        "type": "report",
        "kind": "intel",
        "subject": subject,
        "description": rng.choice(INTEL[subject]),
        "lat": round(position[0], 7),
        "lon": round(position[1], 7),
    }
