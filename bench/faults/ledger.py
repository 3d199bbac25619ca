"""The fault ledger: what the service wrote against what its clients received.

After a scenario has settled, the database is read (SELECTs in a read-only transaction)
for what the service says it sent: incidents, offers, per-guard frames (guard_messages,
every seq up to guard_channels.last_seq), instructions (`incident.instruction` events),
escalations, offer-expiry timers and webhook deliveries. The clients' side is what the
phones logged, the 201s the workload got and what the webhook receiver was sent. Each
item is classified:

- ok: written once and received once (or received again under the same seq / webhook-id:
  a flagged duplicate, which the protocol tells the client to drop);
- lost: promised (a 201, a row, an event) but never received, or never written;
- duplicated-unflagged: the same message under two seqs, two offers frames for one offer,
  two deliveries of one event: a client cannot tell it is a repeat;
- unexpected: received but never written, or not matching what was written.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from app.incidents.lifecycle import OPEN, STATUSES, staffing_status
from bench.common import pg_dsn
from bench.faults.phones import Phone, frame_key
from bench.faults.receiver import WebhookReceiver
from bench.faults.workload import Record

KINDS = ("incident", "offer", "guard frame", "instruction", "escalation", "timer", "webhook")
LATE_S = 5.0  # a timer due during a fault must fire within this of the recovery
# Internal event types our subscription receives (app/integrations/webhooks.py WEBHOOK_TYPES).
WEBHOOK_EVENTS = {
    "incident.created": "incident.created",
    "escalation.sent": "incident.escalated",
    "incident.assigned": "incident.assigned",
    "incident.resolved": "incident.resolved",
    "incident.closed": "incident.closed",
    "incident.cancelled": "incident.cancelled",
}
SUBSCRIBED = sorted(WEBHOOK_EVENTS.values())


@dataclass
class Tally:
    ok: int = 0
    lost: int = 0
    dup_unflagged: int = 0
    unexpected: int = 0
    flagged: int = 0  # duplicates the client can recognise (same seq, same webhook-id)


@dataclass
class Ledger:
    """Counts per kind, plus the timer and incident-state findings, with examples."""

    tallies: dict[str, Tally] = field(default_factory=lambda: {k: Tally() for k in KINDS})
    late_timers: int = 0
    illegal_incidents: int = 0
    examples: list[str] = field(default_factory=list)

    def note(self, kind: str, verdict: str, what: str) -> None:
        tally = self.tallies[kind]
        setattr(tally, verdict, getattr(tally, verdict) + 1)
        if verdict != "ok" and len(self.examples) < 20:
            self.examples.append(f"{kind} {verdict}: {what}")

    def finding(self, what: str) -> None:
        if len(self.examples) < 20:
            self.examples.append(what)

    @property
    def clean(self) -> bool:
        bad = sum(t.lost + t.dup_unflagged + t.unexpected for t in self.tallies.values())
        return bad == 0 and self.late_timers == 0 and self.illegal_incidents == 0


async def reconcile(
    url: str,
    phones: Sequence[Phone],
    record: Record,
    receiver: WebhookReceiver,
    subscription_id: str,
    faults: Iterable[tuple[float, float]],
) -> Ledger:
    """Read the database once and classify everything the scenario sent and received."""
    dsn, name = pg_dsn(url)
    conn = await asyncpg.connect(f"{dsn}/{name}", timeout=10)
    try:
        async with conn.transaction(readonly=True, isolation="repeatable_read"):
            db = await _read(conn, subscription_id)
    finally:
        await conn.close()
    ledger = Ledger()
    _incidents(ledger, db, record)
    _offers_and_frames(ledger, db, phones)
    _instructions(ledger, db, phones, record)
    _escalations(ledger, db)
    _timers(ledger, db, list(faults))
    _webhooks(ledger, db, receiver)
    _legal_states(ledger, db)
    return ledger


async def _read(conn: asyncpg.Connection, subscription_id: str) -> dict[str, Any]:
    q = conn.fetch
    return {
        "now": await conn.fetchval("SELECT now()"),
        "incidents": await q("SELECT id, status, priority, station_id, description FROM incidents"),
        "offers": await q(
            "SELECT id, incident_id, guard_id, expires_at, outcome, responded_at FROM offers"
        ),
        "messages": await q("SELECT guard_id, seq, frame FROM guard_messages"),
        "channels": await q("SELECT guard_id, last_seq FROM guard_channels"),
        "events": await q(
            "SELECT id, type, incident_id, data FROM events WHERE type = ANY($1::text[])",
            [
                "incident.instruction",
                "escalation.sent",
                "offer.expired",
                *WEBHOOK_EVENTS,
            ],
        ),
        "escalations": await q("SELECT id, incident_id, station_id FROM escalations"),
        "assignments": await q("SELECT id, incident_id, guard_id, status FROM assignments"),
        "engagements": await q("SELECT guard_id, incident_id FROM guard_engagements"),
        "timers": await q("SELECT kind, subject_id, due_at FROM timers"),
        "deliveries": await q(
            "SELECT id, event_id, event_type, status, attempts, next_attempt_at, created_at "
            "FROM webhook_deliveries "
            "WHERE subscription_id = $1",
            subscription_id,
        ),
    }


def _json(value: Any) -> dict[str, Any]:
    return dict(json.loads(value)) if isinstance(value, str) else dict(value or {})


def _incidents(ledger: Ledger, db: dict[str, Any], record: Record) -> None:
    by_key: dict[str, list[str]] = collections.defaultdict(list)
    for row in db["incidents"]:
        by_key[str(row["description"]).removeprefix("fault suite ")].append(row["id"])
    for key, incident_id in record.incidents.items():
        found = by_key.get(key, [])
        if incident_id not in found:
            ledger.note("incident", "lost", f"{incident_id} answered 201 ({key}), not stored")
        elif len(found) > 1:
            ledger.note("incident", "dup_unflagged", f"{key} stored {len(found)} times")
        else:
            ledger.note("incident", "ok", key)
    for key in record.unconfirmed:
        if by_key.get(key):
            ledger.note("incident", "unexpected", f"{key} stored, never answered 201")


def _offers_and_frames(ledger: Ledger, db: dict[str, Any], phones: Sequence[Phone]) -> None:
    stored: dict[str, dict[int, dict[str, Any]]] = collections.defaultdict(dict)
    for row in db["messages"]:
        stored[row["guard_id"]][int(row["seq"])] = _json(row["frame"])
    last = {row["guard_id"]: int(row["last_seq"]) for row in db["channels"]}
    offer_frames: collections.Counter[str] = collections.Counter()
    received_offers: dict[str, str] = {}  # offer id → guard that received it
    for phone in phones:
        frames = stored.get(phone.guard_id, {})
        got = {r.seq: r for r in phone.log.frames}
        tally = ledger.tallies["guard frame"]
        tally.flagged += phone.log.flagged_duplicates
        keys: collections.Counter[tuple[str, str]] = collections.Counter()
        for seq in range(1, last.get(phone.guard_id, 0) + 1):
            frame = frames.get(seq)
            if frame is None:
                ledger.note("guard frame", "lost", f"{phone.guard_id} seq {seq} not stored")
                continue
            kind, key = str(frame.get("type")), frame_key(frame)
            keys[kind, key] += 1
            if kind == "offer":
                offer_frames[key] += 1
            if seq not in got:
                ledger.note("guard frame", "lost", f"{phone.guard_id} seq {seq} ({kind})")
            elif (got[seq].type, got[seq].key) != (kind, key):
                ledger.note("guard frame", "unexpected", f"{phone.guard_id} seq {seq} differs")
            else:
                ledger.note("guard frame", "ok", "")
        for (kind, key), count in keys.items():
            if count > 1 and kind in ("offer", "offer.withdrawn", "assignment", "instruction"):
                ledger.note(
                    "guard frame", "dup_unflagged", f"{phone.guard_id} {kind} {key} ×{count}"
                )
        for seq, received in got.items():
            if seq > last.get(phone.guard_id, 0):
                ledger.note(
                    "guard frame", "unexpected", f"{phone.guard_id} seq {seq} never written"
                )
            if received.type == "offer":
                received_offers[received.key] = phone.guard_id
    offers = {row["id"]: row for row in db["offers"]}
    for offer_id, row in offers.items():
        if offer_frames[offer_id] > 1:
            ledger.note("offer", "dup_unflagged", f"{offer_id} queued {offer_frames[offer_id]}×")
        elif received_offers.get(offer_id) == row["guard_id"]:
            ledger.note("offer", "ok", offer_id)
        else:
            ledger.note("offer", "lost", f"{offer_id} for {row['guard_id']} never received")
    for offer_id, guard_id in received_offers.items():
        if offer_id not in offers or offers[offer_id]["guard_id"] != guard_id:
            ledger.note("offer", "unexpected", f"{offer_id} at {guard_id}, no such offer")


def _instructions(
    ledger: Ledger, db: dict[str, Any], phones: Sequence[Phone], record: Record
) -> None:
    received: dict[tuple[str, str], int] = collections.Counter()
    for phone in phones:
        for frame in phone.log.frames:
            if frame.type == "instruction":
                received[phone.guard_id, frame.key] += 1
    sent: set[tuple[str, str]] = set()
    for row in db["events"]:
        if row["type"] != "incident.instruction":
            continue
        data = _json(row["data"])
        for guard_id in data.get("guards", []):
            key = (guard_id, f"{row['incident_id']}:{data.get('text')}")
            sent.add(key)
            count = received.get(key, 0)
            verdict = "ok" if count == 1 else "lost" if count == 0 else "dup_unflagged"
            ledger.note("instruction", verdict, f"{key} received {count}×")
    for incident_id, text, guards in record.instructions:
        for guard_id in guards:
            if (guard_id, f"{incident_id}:{text}") not in sent:
                ledger.note("instruction", "lost", f"201 for {incident_id} → {guard_id}, no event")
    for key in received:
        if key not in sent:
            ledger.note("instruction", "unexpected", f"{key} received, never sent")


def _escalations(ledger: Ledger, db: dict[str, Any]) -> None:
    sent = collections.Counter(
        _json(row["data"]).get("escalation_id")
        for row in db["events"]
        if row["type"] == "escalation.sent"
    )
    escalated = {row["incident_id"] for row in db["escalations"]}
    for row in db["escalations"]:
        count = sent.pop(row["id"], 0)
        verdict = "ok" if count == 1 else "lost" if count == 0 else "dup_unflagged"
        ledger.note("escalation", verdict, f"{row['id']}: {count} escalation.sent events")
    for escalation_id in sent:
        ledger.note("escalation", "unexpected", f"escalation.sent for unknown {escalation_id}")
    for row in db["incidents"]:  # priority 1 escalates at once (the default policy)
        if row["priority"] == 1 and row["station_id"] and row["id"] not in escalated:
            ledger.note("escalation", "lost", f"priority-1 incident {row['id']} not escalated")


def _timers(ledger: Ledger, db: dict[str, Any], faults: list[tuple[float, float]]) -> None:
    """Offer expiry: every expired offer has one `offer.expired` event and one withdrawn
    frame, on time (or within LATE_S of the end of the fault it fell due in); no offer or
    timer is left overdue."""
    now: dt.datetime = db["now"]
    expired_events = collections.Counter(
        _json(row["data"]).get("offer_id") for row in db["events"] if row["type"] == "offer.expired"
    )
    withdrawn_frames: collections.Counter[str] = collections.Counter()
    for row in db["messages"]:
        frame = _json(row["frame"])
        if frame.get("type") == "offer.withdrawn" and frame.get("reason") == "expired":
            withdrawn_frames[str(frame.get("offer_id"))] += 1
    for row in db["offers"]:
        offer_id, due = row["id"], row["expires_at"]
        if row["outcome"] is None:
            if (now - due).total_seconds() > LATE_S:
                ledger.note("timer", "lost", f"offer {offer_id} open {now - due} past expiry")
            continue
        if row["outcome"] != "expired":
            if expired_events.get(offer_id):
                ledger.note("timer", "unexpected", f"offer.expired for {row['outcome']} {offer_id}")
            continue
        events, frames = expired_events.get(offer_id, 0), withdrawn_frames.get(offer_id, 0)
        if events > 1 or frames > 1:
            ledger.note("timer", "dup_unflagged", f"{offer_id}: {events} events, {frames} frames")
        elif events == 0 or frames == 0:
            ledger.note("timer", "lost", f"{offer_id}: {events} events, {frames} frames")
        elif row["responded_at"] < due:
            ledger.note("timer", "unexpected", f"{offer_id} expired before its time")
        else:
            ledger.note("timer", "ok", offer_id)
        fired, due_s = row["responded_at"].timestamp(), due.timestamp()
        # A fault also excuses timers that fell due just before it and had not fired yet.
        start_from = max([due_s] + [end for start, end in faults if start - LATE_S <= due_s <= end])
        if fired - start_from > LATE_S:
            ledger.late_timers += 1
            if ledger.late_timers <= 5:  # a few examples; the count says how many
                ledger.finding(
                    f"timer late: {offer_id} due {clock_time(due_s)}, fired {clock_time(fired)} "
                    f"({fired - start_from:.1f} s late)"
                )
    for row in db["timers"]:
        if (now - row["due_at"]).total_seconds() > LATE_S:
            ledger.note("timer", "lost", f"{row['kind']} {row['subject_id']} overdue, not fired")


def clock_time(epoch_s: float) -> str:
    return dt.datetime.fromtimestamp(epoch_s, dt.UTC).strftime("%H:%M:%S.%f")[:-3]


def _webhooks(ledger: Ledger, db: dict[str, Any], receiver: WebhookReceiver) -> None:
    delivered = receiver.delivered()
    oks = collections.Counter(h.webhook_id for h in receiver.hits if 200 <= h.status < 300)
    ledger.tallies["webhook"].flagged += sum(n - 1 for n in oks.values() if n > 1)
    deliveries = {row["id"]: row for row in db["deliveries"]}
    per_event = collections.Counter(row["event_id"] for row in db["deliveries"])
    for delivery_id, row in deliveries.items():
        if per_event[row["event_id"]] > 1:
            ledger.note("webhook", "dup_unflagged", f"event {row['event_id']} has 2+ deliveries")
        elif delivery_id in delivered:
            ledger.note("webhook", "ok", delivery_id)
        else:
            hits = [h for h in receiver.hits if h.webhook_id == delivery_id]
            ledger.note(
                "webhook",
                "lost",
                f"{delivery_id} ({row['status']}, {row['attempts']} attempts, created "
                f"{clock_time(row['created_at'].timestamp())}, next "
                f"{row['next_attempt_at'] and clock_time(row['next_attempt_at'].timestamp())}) "
                f"never answered 2xx; received "
                + (
                    ", ".join(f"{clock_time(h.at)}→{h.status or 'hung up'}" for h in hits)
                    or "never"
                ),
            )
    created = collections.Counter(
        row["incident_id"] for row in db["events"] if row["type"] == "incident.created"
    )
    for incident_id, count in created.items():
        if count > 1:
            ledger.note("webhook", "dup_unflagged", f"incident.created ×{count} for {incident_id}")
    for row in db["events"]:
        if row["type"] in WEBHOOK_EVENTS and row["id"] not in per_event:
            ledger.note("webhook", "lost", f"event {row['id']} {row['type']}: no delivery")
    for hit in receiver.hits:
        if hit.webhook_id not in deliveries or not hit.signed:
            ledger.note("webhook", "unexpected", f"{hit.webhook_id} unknown or badly signed")


def _legal_states(ledger: Ledger, db: dict[str, Any]) -> None:
    """Statuses that exist; an ended incident holds no open offer, guard or engagement;
    an open one's status is what its assignments imply; no guard works two at once."""
    open_offers = collections.Counter(
        r["incident_id"] for r in db["offers"] if r["outcome"] is None
    )
    active: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    per_guard = collections.Counter()
    for row in db["assignments"]:
        if row["status"] != "cleared":
            active[row["incident_id"]][row["status"]] += 1
            per_guard[row["guard_id"]] += 1
    engaged = collections.Counter(row["incident_id"] for row in db["engagements"])
    for row in db["incidents"]:
        status, incident_id = row["status"], row["id"]
        counts = active.get(incident_id, collections.Counter())
        problem = None
        if status not in STATUSES:
            problem = f"unknown status {status}"
        elif status not in OPEN and (open_offers[incident_id] or counts or engaged[incident_id]):
            problem = f"{status} but holds offers/guards"
        elif status in OPEN:
            implied = staffing_status(status, sum(counts.values()), counts["on_scene"])
            if implied != status:
                problem = f"{status}, its assignments say {implied}"
        if problem:
            ledger.illegal_incidents += 1
            ledger.finding(f"incident {incident_id}: {problem}")
    for guard_id, count in per_guard.items():
        if count > 1:
            ledger.illegal_incidents += 1
            ledger.finding(f"guard {guard_id} works {count} incidents at once")
