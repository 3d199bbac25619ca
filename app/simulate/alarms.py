"""An alarm company: one monitored site of a simulated company whose receiver posts alarms.

At start it creates the site's alarm account (or reuses it from an earlier run, active
again) and an integration key scoped `alarms:write`; then it posts alarms at random
intervals, and a keyholder now and then cancels one the server accepted.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import random
import time
from dataclasses import dataclass
from typing import Any

from app.simulate.api import Api, ApiError, ServerUnavailable
from app.simulate.clock import PhoneClock
from app.simulate.config import Behaviour
from app.simulate.stats import Stats

RECEIVER_SCOPES = ["alarms:write"]
ZONES = tuple(str(z) for z in range(1, 9))
# event code: (weight, verifications to pick from, description); SIA DC-03 codes
SIGNALS: dict[str, tuple[float, tuple[str, ...], str]] = {
    "BA": (60, ("none", "none", "none", "video"), "intrusion: rear door contact opened"),
    "TA": (15, ("none",), "tamper: detector cover removed"),
    "FA": (10, ("none", "guard"), "fire: smoke detector in the stock room"),
    "PA": (10, ("none", "audio"), "panic button pressed at the front desk"),
    "MA": (5, ("none",), "medical pendant pressed"),
}


def account_number(company_id: str) -> str:
    """The simulated site's account number: one per company, the same on every run."""
    return f"SIM-{company_id}"[:64]


def plan_alarm(rng: random.Random, account: str, occurred_at: dt.datetime) -> dict[str, Any]:
    """An alarm as the company's receiver would post it (a repeat within two minutes of
    the same zone and code is a duplicate the server rejects, as a real panel sends)."""
    codes = list(SIGNALS)
    code = rng.choices(codes, weights=[SIGNALS[c][0] for c in codes])[0]
    _, verifications, description = SIGNALS[code]
    return {
        "account": account,
        "zone": rng.choice(ZONES),
        "event_code": code,
        "occurred_at": occurred_at.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "verification": rng.choice(verifications),
        "description": description,
    }


def cancel_after(behaviour: Behaviour, rng: random.Random) -> float | None:
    """Seconds until the keyholder cancels an accepted alarm, or None when it stands."""
    if rng.random() >= behaviour.alarm_cancel_rate:
        return None
    return rng.uniform(*behaviour.alarm_cancel_after_s)


@dataclass
class Site:
    """The alarm account the run posts for, and the server's clock learnt from it."""

    account: str
    account_id: str
    clock: PhoneClock


class AlarmCompany:
    """The simulated company's alarm receiver, with its own key."""

    def __init__(self, api: Api, behaviour: Behaviour, rng: random.Random, stats: Stats) -> None:
        self.api = api
        self.behaviour = behaviour
        self.rng = rng
        self.stats = stats
        self.site: Site | None = None
        self.key: str | None = None
        self._key_id: str | None = None
        self.cancels: dict[str, float] = {}  # alarm id -> monotonic time of the cancel

    async def set_up(self, company_id: str, location: tuple[float, float], run_tag: str) -> None:
        """Create (or reuse and reactivate) the company's simulated site; issue the key."""
        number = account_number(company_id)
        found = await self.api.request(
            "GET", "/api/v1/alarm-accounts", params={"account": number, "company_id": company_id}
        )
        if found["items"]:
            account = await self.api.request(
                "PATCH", f"/api/v1/alarm-accounts/{found['items'][0]['id']}",
                json={"status": "active"},
            )  # fmt: skip
            stamp = account["updated_at"]
        else:
            body = {
                "company_id": company_id,
                "account": number,
                "site_name": "Simulated site (jewellery shop)",
                "location": {"lat": round(location[0], 6), "lon": round(location[1], 6)},
                "contacts": [{"name": "Night keyholder", "phone": "+8613800000000"}],
            }
            account = await self.api.request("POST", "/api/v1/alarm-accounts", json=body)
            stamp = account["created_at"]
        clock = PhoneClock()  # the alarm's occurred_at must be on the server's clock
        clock.sync(stamp)
        self.site = Site(str(account["account"]), str(account["id"]), clock)
        body = {"name": f"simulated-alarm-receiver-{run_tag}", "scopes": RECEIVER_SCOPES}
        created = await self.api.request("POST", "/api/v1/api-keys", json=body)
        self.key, self._key_id = str(created["key"]), str(created["id"])

    async def revoke_key(self) -> None:
        if self._key_id is not None:
            await self.api.request("DELETE", f"/api/v1/api-keys/{self._key_id}")
            self._key_id = None

    async def run(self, per_minute: float, stop: asyncio.Event) -> None:
        """Alarms at random (Poisson) intervals and the keyholders' cancels, until `stop`."""
        if self.site is None or per_minute <= 0:
            return
        next_at = time.monotonic() + self.rng.expovariate(per_minute / 60.0)
        while not stop.is_set():
            now = time.monotonic()
            try:
                if now >= next_at:
                    next_at = now + self.rng.expovariate(per_minute / 60.0)
                    await self._post(self.site)
                for alarm_id in [a for a, due in self.cancels.items() if due <= now]:
                    del self.cancels[alarm_id]
                    await self._cancel(alarm_id)
            except ServerUnavailable:
                self.stats.error("http_unreachable")
            wake = min([next_at, *self.cancels.values()]) - time.monotonic()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.01, wake))

    async def _post(self, site: Site) -> None:
        body = plan_alarm(self.rng, site.account, site.clock.now())
        try:
            accepted = await self._as_receiver("POST", "/api/v1/alarms", body)
        except ApiError as exc:
            reason = exc.code.split(" ", 1)[1]
            if reason in ("too_old", "unknown_account", "duplicate", "account_suspended"):
                self.stats.alarms_rejected[reason] += 1
            else:
                self.stats.error(exc.code)
            return
        self.stats.alarms_accepted += 1
        delay = cancel_after(self.behaviour, self.rng)
        if delay is not None:
            self.cancels[str(accepted["id"])] = time.monotonic() + delay

    async def _cancel(self, alarm_id: str) -> None:
        body = {"reason": "keyholder_cancel", "note": "keyholder on site: staff set it off"}
        try:
            await self._as_receiver("POST", f"/api/v1/alarms/{alarm_id}/cancel", body)
        except ApiError as exc:
            if exc.status != 409:  # the incident ended another way first: nothing to cancel
                self.stats.error(exc.code)
            return
        self.stats.alarms_cancelled += 1

    async def _as_receiver(self, method: str, path: str, body: dict[str, Any]) -> Any:
        return await self.api.request(method, path, json=body, bearer=self.key)
