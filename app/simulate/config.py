"""What a simulation run is asked to do: the command line's options as plain data."""

from __future__ import annotations

from dataclasses import dataclass, field

from app.demo import tianjin


@dataclass(frozen=True)
class Bounds:
    """A lat/lon rectangle guards patrol in and incidents happen in."""

    south: float
    west: float
    north: float
    east: float

    def clamp(self, lat: float, lon: float) -> tuple[float, float]:
        """The nearest point inside the rectangle."""
        return min(max(lat, self.south), self.north), min(max(lon, self.west), self.east)

    @property
    def centre(self) -> tuple[float, float]:
        return (self.south + self.north) / 2, (self.west + self.east) / 2


# The demo city, a little inside its outer edge.
TIANJIN = Bounds(
    tianjin.SOUTH + 0.002, tianjin.WEST + 0.002, tianjin.NORTH - 0.002, tianjin.EAST - 0.002
)


@dataclass(frozen=True)
class Behaviour:
    """How simulated guards behave; probabilities and durations in seconds."""

    accept_rate: float = 0.85
    decline_rate: float = 0.10  # the rest of the offers are left to expire
    reply_delay_s: tuple[float, float] = (2.0, 8.0)
    bike_rate: float = 0.25  # guards without a patrol vehicle who ride a bike
    on_scene_radius_m: float = 30.0
    clear_after_s: tuple[float, float] = (60.0, 240.0)
    dropouts_per_hour: float = 1.0  # per guard: lose the signal, then resume
    offline_s: tuple[float, float] = (5.0, 25.0)
    ping_interval_s: float = 5.0
    tick_s: float = 1.0
    # The police CAD: seconds from escalation to ack, ack to arrival, arrival to handover.
    police_delays_s: tuple[tuple[float, float], ...] = ((10.0, 30.0), (60.0, 180.0), (30.0, 120.0))
    poll_s: float = 3.0  # how often the CAD looks at the incidents it follows
    # Intelligence: per free on-duty guard, reports an hour; the police desk's triage delay.
    intel_per_hour: float = 0.5
    triage_after_s: tuple[float, float] = (20.0, 90.0)
    # Alarms: the share of accepted alarms a keyholder cancels, and after how long.
    alarm_cancel_rate: float = 0.2
    alarm_cancel_after_s: tuple[float, float] = (20.0, 90.0)


@dataclass(frozen=True)
class SimulationConfig:
    """One run of the simulator."""

    url: str
    username: str = "admin"
    password: str = "demo-admin-pass"
    guards: int = 60
    incidents_per_minute: float = 2.0
    cad_share: float = 0.3  # incidents posted by the police CAD (with an external_ref)
    drill_share: float = 0.05  # incidents that are drills (exercise: true)
    police: bool = True  # the CAD acknowledges, arrives, hands over and triages intel
    alarms_per_minute: float = 0.5  # from one alarm account of a simulated company
    seed: int | None = None
    duration_s: float | None = None
    wait_ready_s: float = 0.0
    summary_every_s: float = 5.0
    company_id: str | None = None  # only this company's guards
    bounds: Bounds = TIANJIN
    behaviour: Behaviour = field(default_factory=Behaviour)
