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
# verdict: (weight, notes the desk sends back to the guard)
VERDICTS: dict[str, tuple[float, tuple[str, ...]]] = {
    "useful": (40, ("thank you, passed to the patrol team", "noted, we are checking the area")),
    "not_useful": (35, ("known to us already, no action needed", "checked, nothing found")),
    "acted_on": (25, ("a patrol car was sent and dealt with it", "officers spoke to the person")),
}
INTEL_PAGE = 100


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


def triage_delay(behaviour: Behaviour, rng: random.Random) -> float:
    """Seconds before the desk reads a new intel report and gives its verdict."""
    return rng.uniform(*behaviour.triage_after_s)


def triage_verdict(rng: random.Random) -> tuple[str, str]:
    """The desk's verdict on an intel report and the note the guard gets back."""
    states = list(VERDICTS)
    state = rng.choices(states, weights=[VERDICTS[v][0] for v in states])[0]
    return state, rng.choice(VERDICTS[state][1])


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
        # The run's own guards: the desk triages their intel, never a real guard's.
        self.reporters: set[str] = set()
        self.intel_due: dict[str, float] = {}  # intel id -> monotonic time of the verdict

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
            if self.act and self.reporters and not stop.is_set():
                try:
                    await self._triage()
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

    async def _triage(self) -> None:
        """Read the new intel from the run's guards; give each its verdict once it is due."""
        params = {"state": "new", "limit": INTEL_PAGE}
        page = await self.api.request("GET", "/api/v1/intel", params=params, as_cad=True)
        now = time.monotonic()
        waiting = {str(i["id"]) for i in page["items"] if i["guard_id"] in self.reporters}
        for intel_id in waiting - set(self.intel_due):
            self.intel_due[intel_id] = now + triage_delay(self.behaviour, self.rng)
        for intel_id in list(self.intel_due):
            if intel_id not in waiting:
                del self.intel_due[intel_id]  # triaged by someone else (or past this page)
            elif now >= self.intel_due[intel_id]:
                del self.intel_due[intel_id]
                state, note = triage_verdict(self.rng)
                body = {"state": state, "note": note}
                try:
                    await self.api.request(
                        "POST", f"/api/v1/intel/{intel_id}/triage", json=body, as_cad=True
                    )
                except ApiError as exc:
                    if exc.status != 409:  # an operator gave a verdict first: theirs stands
                        raise
                else:
                    self.stats.intel_triaged += 1

    async def _free_unit(self, escalation: dict[str, Any]) -> None:
        """After the incident ends, the unit the CAD sent is available again."""
        unit_id = escalation.get("unit_id")
        if unit_id and self.busy_units.pop(unit_id, None) is not None:
            await self.api.request(
                "PATCH", f"/api/v1/units/{unit_id}", json={"status": "available"}, as_cad=True
            )
