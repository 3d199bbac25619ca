"""An alarm arrives: reject it with a reason code, or accept it and open an incident.

Every alarm is stored with its outcome, rejected ones too, in the request's transaction
(the route answers a rejection without raising, so the row commits). Checks run in this
order: `unknown_account`, `account_suspended`, `too_old`, `duplicate`.

Duplicates are settled by the database: an accepted alarm is inserted `latched`, and a
partial unique index allows one latched alarm per (account, zone, event_code). A latch
older than the duplicate window is released by a conditional UPDATE just before the
insert; the insert itself is `ON CONFLICT DO NOTHING`, so of identical alarms racing,
exactly one row goes in and the others are stored as `duplicate` of it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.alarms import accounts, priority
from app.alarms.schemas import AlarmCreate
from app.auth.principal import Principal
from app.clock import isoformat
from app.dispatch import engine, escalation
from app.dispatch.policy import policy_for
from app.errors import Unprocessable
from app.ids import new_id
from app.incidents.service import created_data
from app.models import Alarm, AlarmAccount, Incident, SecurityCompany

if TYPE_CHECKING:
    from app.context import AppContext

# An alarm panel's clock may run a little fast; anything further ahead is a bad time.
FUTURE_SKEW_S = 60.0

# The HTTP status each rejection answers with (the reason is `error.code`).
REJECTION_STATUS: dict[str, int] = {
    "too_old": 422,  # the body is well formed but stale: nobody should be sent now
    "unknown_account": 404,  # no such account (or not one this credential may reach)
    "duplicate": 409,  # the same alarm is already being handled
    "account_suspended": 409,  # the account or its company may not raise alarms now
}


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of an alarm: the stored row, and the incident when it was accepted."""

    alarm: Alarm
    incident: Incident | None
    message: str = ""

    @property
    def accepted(self) -> bool:
        return self.incident is not None


def occurred_at_utc(value: dt.datetime, now: dt.datetime) -> dt.datetime:
    """The alarm's time in UTC; 422 naming `occurred_at` when it has no offset or lies
    more than FUTURE_SKEW_S ahead of the server's clock."""
    if value.tzinfo is None:
        raise Unprocessable("occurred_at", "must include a timezone (e.g. Z)")
    try:
        value = value.astimezone(dt.UTC)
    except OverflowError:
        raise Unprocessable("occurred_at", "is out of range") from None
    if value > now + dt.timedelta(seconds=FUTURE_SKEW_S):
        raise Unprocessable(
            "occurred_at",
            f"lies more than {FUTURE_SKEW_S:.0f} s in the future ({isoformat(now)} now)",
        )
    return value


async def receive(
    session: AsyncSession, ctx: AppContext, principal: Principal, body: AlarmCreate
) -> Outcome:
    """Decide on the alarm, store it with its outcome and, when accepted, open its incident
    and send the first wave, all in the caller's transaction."""
    now = ctx.clock.now()
    occurred_at = occurred_at_utc(body.occurred_at, now)
    event_code = body.event_code.upper()
    row: dict[str, Any] = {
        "id": new_id("alarm"),
        "account": body.account,
        "zone": body.zone or "",
        "event_code": event_code,
        "verification": body.verification,
        "description": body.description,
        "occurred_at": occurred_at,
        "received_at": now,
        "received_by": principal.actor,
        "latched": False,
    }
    account = await session.scalar(select(AlarmAccount).where(AlarmAccount.account == body.account))
    if account is None or not accounts.visible(principal, account):
        return await _reject(
            session, ctx, principal, row, "unknown_account", f"no alarm account '{body.account}'"
        )
    row.update(account_id=account.id, company_id=account.company_id, station_id=account.station_id)
    company = await session.get(SecurityCompany, account.company_id)
    assert company is not None  # a foreign key
    suspended = _suspension(account, company, now.date())
    if suspended:
        return await _reject(session, ctx, principal, row, "account_suspended", suspended)
    max_age = ctx.settings.alarm_max_age_s
    age = (now - occurred_at).total_seconds()
    if age > max_age:
        return await _reject(
            session,
            ctx,
            principal,
            row,
            "too_old",
            f"the alarm occurred {age:.0f} s ago; alarms older than {max_age:.0f} s are refused",
            max_age_s=max_age,
        )
    row["priority"] = priority.priority_for(event_code, body.verification)
    if not await _latch(session, ctx, row):
        holder = await session.scalar(
            select(Alarm.id).where(
                Alarm.account_id == account.id,
                Alarm.zone == row["zone"],
                Alarm.event_code == event_code,
                Alarm.latched.is_(True),
            )
        )
        row.update(priority=None, duplicate_of=holder)
        window = ctx.settings.alarm_duplicate_window_s
        return await _reject(
            session,
            ctx,
            principal,
            row,
            "duplicate",
            f"the same alarm (account, zone, event code) was accepted less than {window:.0f} s "
            f"ago as '{holder}'",
            duplicate_of=holder,
        )
    alarm = await session.get_one(Alarm, row["id"])
    incident = await _open_incident(session, ctx, principal, alarm, account, company)
    return Outcome(alarm, incident)


def _suspension(account: AlarmAccount, company: SecurityCompany, today: dt.date) -> str:
    if account.status != "active":
        return f"alarm account '{account.account}' is {account.status}"
    if company.status != "active":
        return f"company '{company.id}' is {company.status}"
    if company.licence_expires_on < today:
        return f"company '{company.id}' licence expired on {company.licence_expires_on}"
    return ""


async def _latch(session: AsyncSession, ctx: AppContext, row: dict[str, Any]) -> bool:
    """Insert the alarm as accepted and latched, unless an identical alarm holds the latch
    within the window; True when this one went in."""
    window = dt.timedelta(seconds=ctx.settings.alarm_duplicate_window_s)
    key = (
        Alarm.account_id == row["account_id"],
        Alarm.zone == row["zone"],
        Alarm.event_code == row["event_code"],
    )
    await session.execute(
        update(Alarm)
        .where(*key, Alarm.latched.is_(True), Alarm.received_at <= row["received_at"] - window)
        .values(latched=False)
        .execution_options(synchronize_session=False)
    )
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = (
        insert(Alarm)
        .values({**row, "outcome": "accepted", "latched": True})
        .on_conflict_do_nothing(
            index_elements=["account_id", "zone", "event_code"], index_where=text("latched")
        )
        .returning(Alarm.id)
    )
    return (await session.scalar(stmt)) is not None


async def _reject(
    session: AsyncSession,
    ctx: AppContext,
    principal: Principal,
    row: dict[str, Any],
    reason: str,
    message: str,
    **details: Any,
) -> Outcome:
    alarm = Alarm(**row, outcome="rejected", reason=reason)
    session.add(alarm)
    await ctx.events.record(
        session,
        type="alarm.rejected",
        actor=principal.actor,
        at=alarm.received_at,
        station_id=alarm.station_id,
        data={**_alarm_data(alarm), "reason": reason, "message": message, **details},
    )
    return Outcome(alarm, None, message)


def _alarm_data(alarm: Alarm) -> dict[str, Any]:
    return {
        "alarm_id": alarm.id,
        "account": alarm.account,
        "account_id": alarm.account_id,
        "company_id": alarm.company_id,
        "zone": alarm.zone or None,
        "event_code": alarm.event_code,
        "verification": alarm.verification,
        "occurred_at": isoformat(alarm.occurred_at),
    }


def _description(alarm: Alarm, account: AlarmAccount) -> str:
    label = priority.LABELS[priority.classify(alarm.event_code)]
    parts = [f"{label} at {account.site_name}"]
    if alarm.zone:
        parts.append(f"zone {alarm.zone}")
    parts.append(f"event {alarm.event_code}")
    parts.append(
        "unverified" if alarm.verification == "none" else f"verified by {alarm.verification}"
    )
    text_ = ", ".join(parts)
    return f"{text_}: {alarm.description}" if alarm.description else text_


async def _open_incident(
    session: AsyncSession,
    ctx: AppContext,
    principal: Principal,
    alarm: Alarm,
    account: AlarmAccount,
    company: SecurityCompany,
) -> Incident:
    """The alarm's incident: category `alarm`, at the site, in the site's station; then
    the same start as any incident (policy escalation, first wave)."""
    assert alarm.priority is not None
    now = alarm.received_at
    jurisdiction = ctx.jurisdictions.locate(account.lat, account.lon)
    policy = policy_for("alarm", alarm.priority, ctx.settings.policy)
    incident = Incident(
        id=new_id("inc"),
        source="alarm",
        category="alarm",
        priority=alarm.priority,
        lat=account.lat,
        lon=account.lon,
        address=account.site_name,
        description=_description(alarm, account),
        reporter={"name": company.name[:200]},
        external_ref=alarm.id,  # unique per caller and source: one incident per alarm
        caller=principal.actor[:64],
        required_guards=policy.guards,
        status="new",
        station_id=jurisdiction.station_id if jurisdiction else None,
        station_match=jurisdiction.match if jurisdiction else None,
        unstaffed=False,
        created_by=principal.actor,
        created_at=now,
        updated_at=now,
    )
    session.add(incident)
    await session.flush()
    alarm.incident_id = incident.id
    await ctx.events.record_many(
        session,
        [
            {
                "type": "incident.created",
                "actor": principal.actor,
                "at": now,
                "incident_id": incident.id,
                "station_id": incident.station_id,
                "data": {**created_data(incident, "alarm", jurisdiction), "alarm_id": alarm.id},
            },
            {
                "type": "alarm.accepted",
                "actor": principal.actor,
                "at": now,
                "incident_id": incident.id,
                "station_id": incident.station_id,
                "data": {
                    **_alarm_data(alarm),
                    "site_name": account.site_name,
                    "alarm_class": priority.classify(alarm.event_code),
                    "priority": incident.priority,
                },
            },
        ],
    )
    await escalation.on_intake(session, ctx, incident)
    await engine.start(session, ctx, incident)
    return incident
