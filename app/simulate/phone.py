"""One simulated guard's phone: a real `/ws/guard` client driven by the guard's decisions.

Two tasks per connection: the receiver handles (and acknowledges) every frame; the ticker
moves the guard, answers offers when their human delay is over, reports progress on the
assignment, pings the position every few seconds and now and then loses the signal.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from dataclasses import dataclass
from typing import Any, Literal

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from app.geo.distance import haversine_m
from app.realtime.close_codes import CloseCode
from app.simulate import behaviour as decide
from app.simulate.clock import PhoneClock, parse_time
from app.simulate.config import Behaviour, Bounds
from app.simulate.crew import Recruit
from app.simulate.movement import choose_mode, heading, patrol_waypoint, step_towards
from app.simulate.stats import Stats

Outcome = Literal["stop", "dropout", "lost", "retired"]
OPEN_TIMEOUT_S = 10.0
SIGN_OFF_WAIT_S = 3.0
RESYNC_EVERY = 6  # pings between `ping` frames that refresh the server-time offset
RETIRE_CODES: dict[int, str] = {
    CloseCode.UNAUTHORIZED: "ws_4401_token",
    CloseCode.REPLACED: "ws_4409_replaced",
    CloseCode.FORBIDDEN: "ws_4403_origin",
}
ENDED = frozenset({"resolved", "closed", "cancelled"})
STOOD_DOWN = frozenset({"invalid_transition", "not_assigned"})


@dataclass
class Job:
    """The assignment the guard is working on."""

    assignment_id: str
    incident_id: str
    scene: tuple[float, float]
    priority: int
    status: str = "accepted"  # accepted -> en_route -> on_scene
    clear_at: float = 0.0  # monotonic time to report `cleared`


@dataclass
class PlannedReply:
    """An answer to an offer, sent once its human delay is over."""

    offer_id: str
    reply: decide.OfferReply
    due: float  # monotonic


class GuardPhone:
    """A guard's phone, connected until `stop`; reconnects and resumes after a drop."""

    def __init__(
        self,
        recruit: Recruit,
        token: str,
        ws_url: str,
        behaviour: Behaviour,
        bounds: Bounds,
        rng: random.Random,
        stats: Stats,
    ) -> None:
        self.recruit = recruit
        self.token = token
        self.ws_url = ws_url
        self.behaviour = behaviour
        self.bounds = bounds
        self.rng = rng
        self.stats = stats
        self.mode = choose_mode(recruit.skills, rng, behaviour.bike_rate)
        self.position = recruit.post
        self.waypoint = patrol_waypoint(recruit.post, self.mode, bounds, rng)
        self.clock = PhoneClock()
        self.job: Job | None = None
        self.replies: dict[str, PlannedReply] = {}
        self.offers_seen: set[str] = set()
        self.acked = 0
        self.on_duty = False
        self.ws: ClientConnection | None = None
        self._duty_changed = asyncio.Event()
        self._moved_at = time.monotonic()
        self._pinged_at = float("-inf")
        self._pings = 0

    @property
    def guard_id(self) -> str:
        return self.recruit.guard_id

    async def run(self, stop: asyncio.Event) -> None:
        """Stay connected until `stop`: after a drop or a lost connection, resume."""
        while not stop.is_set():
            try:
                outcome = await self._connection(stop)
            except ConnectionClosed as exc:  # closed before `welcome`: the server refused
                self.stats.error(f"ws_closed_{exc.rcvd.code if exc.rcvd else 'abnormally'}")
                outcome = "lost"
            except (OSError, TimeoutError, InvalidHandshake):
                self.stats.error("ws_connect")
                outcome = "lost"
            except Exception as exc:  # a frame we did not expect must not end the run
                self.stats.error(f"client_{type(exc).__name__}")
                outcome = "lost"
            if outcome in ("stop", "retired"):
                return
            if outcome == "dropout":
                self.stats.reconnects += 1
                pause = decide.offline_for(self.behaviour, self.rng)
            else:
                pause = self.rng.uniform(1.0, 5.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), pause)

    async def _connection(self, stop: asyncio.Event) -> Outcome:
        headers = {"Authorization": f"Bearer {self.token}"}
        async with connect(
            f"{self.ws_url}/ws/guard",
            additional_headers=headers,
            open_timeout=OPEN_TIMEOUT_S,
            ping_interval=None,  # the server pings; its idle check wants our frames anyway
            compression=None,
        ) as ws:
            self.ws = ws
            hello: dict[str, Any] = {"type": "hello"}
            if self.acked:
                hello["resume_after"] = self.acked
            await self._send(hello)
            welcome = json.loads(await asyncio.wait_for(ws.recv(), OPEN_TIMEOUT_S))
            if welcome.get("type") != "welcome":
                self.stats.error(f"ws_{welcome.get('code', 'no_welcome')}")
                return "lost"
            self.clock.sync(welcome["server_time"])
            self.stats.connected += 1
            try:
                await self._send({"type": "duty", "on": True})
                return await self._converse(ws, stop)
            finally:
                self.stats.connected -= 1
                self.ws = None

    async def _converse(self, ws: ClientConnection, stop: asyncio.Event) -> Outcome:
        receiver = asyncio.create_task(self._receive(ws))
        ticker = asyncio.create_task(self._tick(stop))
        done, pending = await asyncio.wait({receiver, ticker}, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if ticker in done:
            problem = ticker.exception()
            if problem is None:
                return ticker.result()
            if not isinstance(problem, ConnectionClosed):
                self.stats.error(f"client_{type(problem).__name__}")
        code = ws.close_code
        if code in RETIRE_CODES:
            self.stats.error(RETIRE_CODES[code])
            return "retired"
        if not stop.is_set():
            self.stats.error(f"ws_closed_{code}")
        return "stop" if stop.is_set() else "lost"

    async def _send(self, frame: dict[str, Any]) -> None:
        assert self.ws is not None
        await self.ws.send(json.dumps(frame))

    # Receiving --------------------------------------------------------------------------

    async def _receive(self, ws: ClientConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for message in ws:
                frame = json.loads(message)
                await self.on_frame(frame)
                seq = frame.get("seq")
                if isinstance(seq, int) and seq > self.acked:
                    await self._send({"type": "ack", "seq": seq})
                    self.acked = seq
                    self.stats.acks += 1

    async def on_frame(self, frame: dict[str, Any]) -> None:
        """Take in one server frame (acknowledged by the caller when it has a seq)."""
        kind = frame.get("type")
        if kind == "offer":
            self._on_offer(frame)
        elif kind == "offer.withdrawn":
            self.replies.pop(frame["offer_id"], None)
            self.stats.withdrawn += 1
        elif kind == "assignment":
            self._on_assignment(frame)
        elif kind == "incident.update":
            incident = frame["incident"]
            if self.job and self.job.incident_id == incident["id"] and incident["status"] in ENDED:
                self.job = None  # stood down: resolved, cancelled or handed over to police
        elif kind == "duty.updated":
            if frame["on"] != self.on_duty:
                self.stats.on_duty += 1 if frame["on"] else -1
            self.on_duty = bool(frame["on"])
            self._duty_changed.set()
        elif kind == "report.accepted" and frame.get("kind") == "intel":
            self.stats.intel_accepted += 1
        elif kind == "intel.feedback":
            self.stats.intel_feedback += 1
        elif kind in ("pong", "welcome"):
            self.clock.sync(frame["server_time"])
        elif kind == "error":
            self.stats.error(str(frame.get("code", "unknown")))
            if frame.get("ref") == "assignment.status" and frame.get("code") in STOOD_DOWN:
                self.job = None  # the incident ended (a cancel) while the status was in flight

    def _on_offer(self, frame: dict[str, Any]) -> None:
        offer_id = frame["offer_id"]
        if offer_id in self.offers_seen:
            return
        self.offers_seen.add(offer_id)
        now, expires_at = self.clock.now(), parse_time(frame["expires_at"])
        if expires_at <= now:
            return  # replayed from an earlier run or a long drop: already over
        self.stats.offers += 1
        reply = decide.reply_to_offer(
            self.behaviour, self.rng, busy=self.job is not None, now=now, expires_at=expires_at
        )
        if reply.answer == "silent":
            self.stats.silent += 1
        else:
            self.replies[offer_id] = PlannedReply(offer_id, reply, time.monotonic() + reply.delay_s)

    def _on_assignment(self, frame: dict[str, Any]) -> None:
        if self.job and self.job.assignment_id == frame["assignment_id"]:
            return
        if frame["status"] == "cleared":
            return
        incident = frame["incident"]
        location = incident["location"]
        self.job = Job(
            assignment_id=frame["assignment_id"],
            incident_id=incident["id"],
            scene=(location["lat"], location["lon"]),
            priority=int(incident["priority"]),
            status="accepted" if frame["status"] == "en_route" else frame["status"],
        )
        if self.job.status == "on_scene":
            self.job.clear_at = time.monotonic() + decide.clear_after(
                self.behaviour, self.rng, self.job.priority
            )
        self.stats.assignments += 1

    # Acting -----------------------------------------------------------------------------

    async def _tick(self, stop: asyncio.Event) -> Outcome:
        last = time.monotonic()
        while not stop.is_set():
            now = time.monotonic()
            self._move(now)
            await self._answer_offers(now)
            await self._work_on_job(now)
            if self.on_duty and now - self._pinged_at >= self.behaviour.ping_interval_s:
                await self._ping(now)
            if self.on_duty and self.job is None:
                await self._notice(now - last)
            if decide.drops_signal(self.behaviour, self.rng, now - last):
                return "dropout"
            last = now
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.behaviour.tick_s)
        await self._sign_off()
        return "stop"

    async def _notice(self, elapsed_s: float) -> None:
        """Now and then a guard on patrol tells the police what it saw (nobody is sent)."""
        if decide.reports_intel(self.behaviour, self.rng, elapsed_s):
            await self._send(decide.intel_report(self.rng, self.position))
            self.stats.intel_reported += 1

    def _move(self, now: float) -> None:
        metres = self.mode.speed_mps * (now - self._moved_at)
        self._moved_at = now
        if self.job is not None:
            if self.job.status != "on_scene":
                self.position = step_towards(self.position, self.job.scene, metres)
            return
        self.position = step_towards(self.position, self.waypoint, metres)
        if self.position == self.waypoint:
            self.waypoint = patrol_waypoint(self.recruit.post, self.mode, self.bounds, self.rng)

    async def _ping(self, now: float) -> None:
        target = self.job.scene if self.job else self.waypoint
        moving = self.position != target and not (self.job and self.job.status == "on_scene")
        frame: dict[str, Any] = {
            "type": "location",
            "lat": round(self.position[0], 7),
            "lon": round(self.position[1], 7),
            "accuracy_m": round(self.rng.uniform(4.0, 12.0), 1),
            "speed_mps": self.mode.speed_mps if moving else 0.0,
            "at": self.clock.stamp(),
        }
        if moving:
            frame["heading"] = round(heading(self.position, target), 1)
        await self._send(frame)
        self._pinged_at = now
        self._pings += 1
        self.stats.pings += 1
        if self._pings % RESYNC_EVERY == 0:
            await self._send({"type": "ping"})

    async def _answer_offers(self, now: float) -> None:
        for planned in [p for p in self.replies.values() if p.due <= now]:
            del self.replies[planned.offer_id]
            if planned.reply.answer == "accept" and self.job is None:
                await self._send({"type": "offer.accept", "offer_id": planned.offer_id})
                self.stats.accepted += 1
            else:
                reason = planned.reply.reason or "already on an assignment"
                frame = {"type": "offer.decline", "offer_id": planned.offer_id, "reason": reason}
                await self._send(frame)
                self.stats.declined += 1

    async def _work_on_job(self, now: float) -> None:
        job = self.job
        if job is None:
            return
        if job.status == "accepted":
            await self._report(job, "en_route")
            job.status = "en_route"
        if job.status == "en_route":
            distance = haversine_m(*self.position, *job.scene)
            if decide.arrived(distance, self.behaviour):
                await self._ping(now)  # the server sees the guard at the scene first
                await self._report(job, "on_scene")
                job.status = "on_scene"
                job.clear_at = now + decide.clear_after(self.behaviour, self.rng, job.priority)
                self.stats.on_scene += 1
        elif job.status == "on_scene" and now >= job.clear_at:
            await self._report(job, "cleared", "scene secured, handed back to the control room")
            self.stats.cleared += 1
            self.job = None

    async def _report(self, job: Job, status: str, note: str | None = None) -> None:
        frame: dict[str, Any] = {
            "type": "assignment.status",
            "assignment_id": job.assignment_id,
            "status": status,
        }
        if note:
            frame["note"] = note
        await self._send(frame)

    async def _sign_off(self) -> None:
        """End of shift: clear a job still open, go off duty, wait (briefly) for the answer."""
        if self.job is not None:
            await self._report(self.job, "cleared", "end of shift (simulator stopped)")
            self.job = None
        if not self.on_duty:
            return
        self._duty_changed.clear()
        await self._send({"type": "duty", "on": False})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._duty_changed.wait(), SIGN_OFF_WAIT_S)
