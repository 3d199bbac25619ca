"""Counters of a simulation run and the one-line summary printed every few seconds."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Stats:
    """Everything the run counts; mutated by the phones, the generator and the police."""

    guards: int = 0
    connected: int = 0
    on_duty: int = 0
    pings: int = 0
    acks: int = 0
    offers: int = 0
    accepted: int = 0
    declined: int = 0
    silent: int = 0
    withdrawn: int = 0
    assignments: int = 0
    on_scene: int = 0
    cleared: int = 0
    reconnects: int = 0
    incidents_posted: int = 0
    drills: int = 0  # of the posted incidents, drills (exercise: true)
    incidents_resolved: int = 0
    police_steps: int = 0
    intel_reported: int = 0  # report {kind: intel} frames sent
    intel_accepted: int = 0  # answered report.accepted
    intel_triaged: int = 0  # verdicts the police desk gave
    intel_feedback: int = 0  # intel.feedback frames the guards received
    alarms_accepted: int = 0
    alarms_cancelled: int = 0  # keyholder cancels of accepted alarms
    alarms_rejected: Counter[str] = field(default_factory=Counter)  # by reason code
    errors: Counter[str] = field(default_factory=Counter)

    def error(self, code: str) -> None:
        """Count a refusal from the server (an error frame's code, `http_409`, …)."""
        self.errors[code] += 1

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def summary(self, elapsed_s: float) -> str:
        """One line: what the simulated city did so far."""
        errors = f"errors {self.error_count}"
        if self.errors:
            top = ", ".join(f"{code}×{n}" for code, n in self.errors.most_common(3))
            errors += f" ({top})"
        return (
            f"[{elapsed_s:6.0f}s] guards {self.connected}/{self.guards} connected, "
            f"{self.on_duty} on duty · pings {self.pings} · offers {self.offers} "
            f"(accepted {self.accepted}, declined {self.declined}, silent {self.silent}) · "
            f"incidents {self.incidents_posted} posted (drills {self.drills}), "
            f"{self.assignments} assigned, "
            f"{self.on_scene} on scene, {self.incidents_resolved} resolved · "
            f"police {self.police_steps} · intel {self.intel_reported} reported, "
            f"{self.intel_triaged} triaged · alarms {self.alarms_accepted} accepted "
            f"({self.alarms_cancelled} cancelled), {sum(self.alarms_rejected.values())} "
            f"rejected · reconnects {self.reconnects} · {errors}"
        )
