"""Licence and certificate expiry: when to warn (pure), and the daily check that records
the warnings as events (`company.licence_expiring`, `guard.certificate_expiring`)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import TYPE_CHECKING, Literal, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.events.log import EventLog
from app.models import ExpiryNotice, Guard, SecurityCompany
from app.supervision.period import local_today

if TYPE_CHECKING:
    from app.context import AppContext

log = logging.getLogger(__name__)

WARN_DAYS = 30
THRESHOLDS = (30, 7, 0)  # days left at which to warn; 0: expires today or has expired
CHECK_EVERY_S = 3600.0
FIRST_CHECK_AFTER_S = 20.0
ACTOR = "system:expiry"
_NOTICE_TABLE = cast(Table, ExpiryNotice.__table__)
_NOTICE = {
    "sqlite": sqlite.insert(_NOTICE_TABLE).on_conflict_do_nothing(),
    "postgresql": postgresql.insert(_NOTICE_TABLE).on_conflict_do_nothing(),
}


def licence_state(days_left: int) -> Literal["valid", "expiring", "expired"]:
    if days_left < 0:
        return "expired"
    return "expiring" if days_left <= WARN_DAYS else "valid"


def due_threshold(days_left: int) -> int | None:
    """The most urgent threshold reached: 12 days left warns at 30, 5 at 7, −3 at 0. One
    warning per threshold, so a date first seen 5 days out is not warned of three times."""
    reached = [t for t in THRESHOLDS if days_left <= t]
    return min(reached) if reached else None


async def check(session: AsyncSession, events: EventLog, now: dt.datetime, zone: ZoneInfo) -> int:
    """Warn once per subject, expiry date and threshold; returns how many warnings."""
    today = local_today(now, zone)
    horizon = today + dt.timedelta(days=max(THRESHOLDS))
    companies = await session.execute(
        select(SecurityCompany.id, SecurityCompany.licence_expires_on).where(
            SecurityCompany.licence_expires_on <= horizon
        )
    )
    guards = await session.execute(
        select(Guard.id, Guard.company_id, Guard.certificate_expires_on).where(
            Guard.status == "active", Guard.certificate_expires_on <= horizon
        )
    )
    subjects: list[tuple[str, str, str | None, dt.date]] = [
        ("company", company_id, company_id, expires_on) for company_id, expires_on in companies
    ]
    subjects += [
        ("guard", guard_id, company_id, expires_on) for guard_id, company_id, expires_on in guards
    ]
    insert = _NOTICE[session.get_bind().dialect.name]
    warned = 0
    for kind, subject_id, company_id, expires_on in subjects:
        days_left = (expires_on - today).days
        threshold = due_threshold(days_left)
        if threshold is None:
            continue
        new = await session.execute(
            insert.values(
                subject_kind=kind,
                subject_id=subject_id,
                expires_on=expires_on,
                threshold_days=threshold,
                noticed_at=now,
            )
        )
        if not new.rowcount:  # type: ignore[attr-defined]
            continue
        data: dict[str, object] = {"company_id": company_id, "expires_on": expires_on.isoformat()}
        data |= {"days_left": days_left, "threshold_days": threshold}
        if kind == "guard":
            data["guard_id"] = subject_id
        event = "company.licence_expiring" if kind == "company" else "guard.certificate_expiring"
        await events.record(session, type=event, actor=ACTOR, at=now, data=data)
        warned += 1
    return warned


async def check_loop(ctx: AppContext) -> None:
    """Soon after start, then hourly: dates move at local midnight, an hour late is fine."""
    await asyncio.sleep(FIRST_CHECK_AFTER_S)
    zone = ZoneInfo(ctx.settings.timezone)
    while True:
        try:
            async with ctx.db.transaction() as session:
                await check(session, ctx.events, ctx.clock.now(), zone)
        except Exception:
            log.exception("licence and certificate expiry check failed; will retry")
        await asyncio.sleep(CHECK_EVERY_S)
