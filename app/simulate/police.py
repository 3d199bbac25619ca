"""The police side: follows posted incidents, and the CAD acknowledges, arrives, hands over."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from dataclasses import dataclass, field
from typing import Any

from app.simulate.api import Api, ApiError, ServerUnavailable
from app.simulate.config import Behaviour
from app.simulate.stats import Stats

# escalation status -> (the CAD's next action, index into Behaviour.police_delays_s)
NEXT_STEP = {"sent": ("ack", 0), "acknowledged": ("arrived", 1), "police_on_scene": ("handover", 2)}
FINAL = frozenset({"resolved", "closed", "cancelled"})


def police_delay(status: str, behaviour: Behaviour, rng: random.Random) -> float | None:
    """Seconds the police take, after seeing an escalation in `status`, to act next."""
    step = NEXT_STEP.get(status)
    if step is None:
        return None
    low, high = behaviour.police_delays_s[step[1]]
    return rng.uniform(low, high)


def pick_unit(escalation: dict[str, Any], busy: set[str]) -> str | None:
    """The nearest recommended unit this CAD has not already sent elsewhere."""
    for unit in escalation.get("recommended_units") or []:
        if unit.get("unit_id") and unit["unit_id"] not in busy:
            return str(unit["unit_id"])
    return None


@dataclass
class Followed:
    """A posted incident the desk watches; `due` maps an escalation id to (status, when)."""

    incident_id: str
    due: dict[str, tuple[str, float]] = field(default_factory=dict)


class PoliceDesk:
    """Polls the incidents the run posted; counts outcomes; plays the CAD if asked to."""

    def __init__(
        self, api: Api, behaviour: Behaviour, rng: random.Random, stats: Stats, act: bool
    ) -> None:
        self.api = api
        self.behaviour = behaviour
        self.rng = rng
        self.stats = stats
        self.act = act
        self.followed: dict[str, Followed] = {}
        self.busy_units: dict[str, str] = {}  # unit id -> escalation id

    def follow(self, incident_id: str) -> None:
        self.followed.setdefault(incident_id, Followed(incident_id))

    async def run(self, stop: asyncio.Event) -> None:
        """Look at every followed incident each `poll_s` until `stop`."""
        while not stop.is_set():
            for followed in list(self.followed.values()):
                if stop.is_set():
                    break
                try:
                    await self._look(followed)
                except ApiError as exc:
                    self.stats.error(exc.code)
                except ServerUnavailable:
                    self.stats.error("http_unreachable")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.behaviour.poll_s)

    async def _look(self, followed: Followed) -> None:
        incident = await self.api.incident(followed.incident_id)
        if incident["status"] in FINAL:
            if incident["status"] != "cancelled":
                self.stats.incidents_resolved += 1
            del self.followed[followed.incident_id]
            for escalation in incident.get("escalations") or []:
                await self._free_unit(escalation)
            return
        if not self.act:
            return
        now = time.monotonic()
        for escalation in incident.get("escalations") or []:
            status, esc_id = escalation["status"], escalation["id"]
            seen = followed.due.get(esc_id)
            if seen is None or seen[0] != status:
                delay = police_delay(status, self.behaviour, self.rng)
                if delay is not None:
                    followed.due[esc_id] = (status, now + delay)
                continue
            if now >= seen[1]:
                await self._step(followed, escalation)

    async def _step(self, followed: Followed, escalation: dict[str, Any]) -> None:
        action, _ = NEXT_STEP[escalation["status"]]
        body: dict[str, Any] = {"station_id": escalation["station_id"]}
        if action == "ack":
            unit_id = pick_unit(escalation, set(self.busy_units))
            if unit_id is not None:
                body["unit_id"] = unit_id
                self.busy_units[unit_id] = escalation["id"]
        elif action == "handover":
            body["note"] = "police on scene have taken over; thank you"
        del followed.due[escalation["id"]]
        await self.api.police_step(followed.incident_id, action, body)
        self.stats.police_steps += 1

    async def _free_unit(self, escalation: dict[str, Any]) -> None:
        """After the incident ends, the unit the CAD sent is available again."""
        unit_id = escalation.get("unit_id")
        if unit_id and self.busy_units.pop(unit_id, None) is not None:
            await self.api.request(
                "PATCH", f"/api/v1/units/{unit_id}", json={"status": "available"}, as_cad=True
            )
