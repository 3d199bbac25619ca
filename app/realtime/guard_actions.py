"""What each incoming guard frame does. Each write runs in its own short transaction."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from app.auth.principal import Principal
from app.dispatch import assignments, intake, offers, roster
from app.geo.live_index import GuardEntry
from app.incidents.schemas import IncidentCreate
from app.intel import service as intel
from app.models import Incident
from app.realtime import frames, outbox
from app.realtime.guard_link import GuardLink
from app.schemas import Location

if TYPE_CHECKING:
    from app.context import AppContext


async def handle(
    ctx: AppContext, link: GuardLink, entry: GuardEntry, principal: Principal, frame: Any
) -> None:
    """Carry out one validated frame; raises FrameError or AppError for an error reply."""
    guard_id = link.guard_id
    match frame:
        case frames.Location():
            ctx.positions.ingest(entry, frame)
            if ctx.broadcasts.active:  # a broadcast it is now inside of (app.broadcasts.board)
                await ctx.broadcasts.reach(entry)
        case frames.Ping():
            await link.acks_stored()  # a pong means every earlier frame has been handled
            link.reply(
                {"type": "pong", "server_time": ctx.clock.now().isoformat().replace("+00:00", "Z")}
            )
        case frames.Ack():
            link.acknowledge(frame.seq)
        case frames.Duty():
            async with ctx.db.transaction() as session:
                await roster.set_duty(session, ctx, guard_id, frame.on)
            link.reply({"type": "duty.updated", "on": frame.on})
        case frames.OfferAccept():
            again: dict[str, Any] | None = None
            async with ctx.db.transaction() as session:
                accepted = await offers.accept(session, ctx, guard_id, frame.offer_id)
                if accepted.repeat and accepted.assignment is not None:
                    # A retried accept: the same assignment again, nothing new written.
                    incident = await session.get(Incident, accepted.assignment.incident_id)
                    assert incident is not None
                    again = frames.assignment_frame(accepted.assignment, incident)
            if again is not None:
                link.reply(again)
            elif accepted.assignment is not None:
                answered_s = link.offer_answered(frame.offer_id)
                if answered_s is not None:
                    ctx.metrics.delivered_to_accepted.observe(answered_s)
        case frames.OfferDecline():
            async with ctx.db.transaction() as session:
                await offers.decline(session, ctx, guard_id, frame.offer_id, frame.reason)
        case frames.AssignmentStatus():
            async with ctx.db.transaction() as session:
                assignment = await assignments.update_status(
                    session, ctx, guard_id, frame.assignment_id, frame.status, frame.note
                )
                incident = await session.get(Incident, assignment.incident_id)
            assert incident is not None
            link.reply(frames.incident_update_frame(incident))
        case frames.Report(kind="intel"):
            async with ctx.db.transaction() as session:
                intel_report = await intel.receive(session, ctx, principal, frame)
            link.reply(
                {
                    "type": "report.accepted",
                    "kind": "intel",
                    "intel_id": intel_report.id,
                    "state": intel_report.state,
                    "station_id": intel_report.station_id,
                }
            )
        case frames.Report():
            assert frame.category is not None
            body = IncidentCreate(
                category=frame.category,
                priority=frame.priority or 3,
                location=Location(lat=frame.lat, lon=frame.lon),
                description=frame.description,
                source="guard",
            )
            async with ctx.db.transaction() as session:
                incident, _ = await intake.receive(session, ctx, principal, body)
            link.reply(
                {
                    "type": "report.accepted",
                    "kind": "incident",
                    "incident_id": incident.id,
                    "status": incident.status,
                }
            )
        case frames.BackupRequest():
            async with ctx.db.transaction() as session:
                incident = await assignments.request_backup(
                    session, ctx, guard_id, frame.incident_id
                )
            link.reply({"type": "backup.requested", "incident_id": incident.id})
        case frames.Hello():
            # A second hello: its resume point is an acknowledgement; replay already ran.
            if frame.resume_after:
                link.acknowledge(frame.resume_after)
                await link.acks_stored()
            async with ctx.db.transaction(readonly=True) as session:
                last_seq, _ = await outbox.channel_state(session, guard_id)
            link.reply(
                {
                    "type": "welcome",
                    "guard_id": guard_id,
                    "server_time": ctx.clock.now().isoformat().replace("+00:00", "Z"),
                    "last_seq": last_seq,
                }
            )
