"""/api/v1/alarm-accounts and /api/v1/alarms: alarm intake from security companies' alarm
receivers (ASAP-style), the accounts it checks against, and keyholder cancels."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import JSONResponse

from app.alarms import accounts, cancel, intake, queries
from app.alarms.schemas import (
    AccountStatus,
    AlarmAccepted,
    AlarmAccountCreate,
    AlarmAccountOut,
    AlarmAccountUpdate,
    AlarmCancel,
    AlarmCreate,
    AlarmOut,
    Outcome,
    Reason,
)
from app.api.deps import Allow, CtxDep, ReadSessionDep, SessionDep
from app.api.instants import utc
from app.api.openapi import conflict
from app.api.pagination import DEFAULT_LIMIT, Cursor, Limit
from app.auth.principal import Principal
from app.errors import error_body
from app.incidents.schemas import IncidentOut
from app.schemas import Instant, Page

router = APIRouter(tags=["alarms"])

READ = Allow("alarms:read")
MANAGE = Allow("alarm_accounts:write")
SHORT_ID = Query(max_length=40)

REJECTIONS: dict[int | str, dict[str, Any]] = {
    404: {"description": "rejected: `unknown_account` (stored, with the alarm's id in details)"},
    409: {"description": "rejected: `duplicate` or `account_suspended` (stored)"},
    422: {"description": "rejected: `too_old` (stored); or a malformed body (not stored)"},
}


# Alarm accounts -------------------------------------------------------------------------


@router.post(
    "/alarm-accounts",
    status_code=201,
    response_model=AlarmAccountOut,
    responses=conflict("`already_exists`: the company already has an account with this number"),
)
async def create_alarm_account(
    principal: Annotated[Principal, Depends(MANAGE)],
    body: AlarmAccountCreate,
    response: Response,
    session: SessionDep,
    ctx: CtxDep,
) -> object:
    """A monitored site of a security company; company managers add their own company's."""
    account = await accounts.create(session, ctx, principal, body)
    response.headers["Location"] = f"/api/v1/alarm-accounts/{account.id}"
    return account


@router.get("/alarm-accounts", response_model=Page[AlarmAccountOut])
async def list_alarm_accounts(
    principal: Annotated[Principal, Depends(READ)],
    session: ReadSessionDep,
    company_id: Annotated[str | None, SHORT_ID] = None,
    station_id: Annotated[str | None, SHORT_ID] = None,
    status: AccountStatus | None = None,
    account: Annotated[str | None, Query(max_length=64)] = None,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
) -> object:
    """Alarm accounts, newest first, by company, station, status or account number."""
    items, next_cursor = await accounts.list_accounts(
        session,
        principal,
        company_id=company_id,
        station_id=station_id,
        status=status,
        account=account,
        cursor=cursor,
        limit=limit,
    )
    return {"items": items, "next_cursor": next_cursor}


@router.get("/alarm-accounts/{account_id}", response_model=AlarmAccountOut)
async def get_alarm_account(
    principal: Annotated[Principal, Depends(READ)], account_id: str, session: ReadSessionDep
) -> object:
    return await accounts.get(session, principal, account_id)


@router.patch("/alarm-accounts/{account_id}", response_model=AlarmAccountOut)
async def update_alarm_account(
    principal: Annotated[Principal, Depends(MANAGE)],
    account_id: str,
    body: AlarmAccountUpdate,
    session: SessionDep,
    ctx: CtxDep,
) -> object:
    """Change the site, its contacts, or suspend / reactivate the account."""
    return await accounts.update(session, ctx, principal, account_id, body)


# Alarms ---------------------------------------------------------------------------------


@router.post("/alarms", status_code=201, response_model=AlarmAccepted, responses=REJECTIONS)
async def receive_alarm(
    principal: Annotated[Principal, Depends(Allow("alarms:write"))],
    body: AlarmCreate,
    response: Response,
    session: SessionDep,
    ctx: CtxDep,
) -> Any:
    """Accepted: 201 with the alarm and the incident it opened. Rejected: the error shape
    with the reason in `error.code` (too_old 422, unknown_account 404, duplicate 409,
    account_suspended 409) and the stored alarm's id in `error.details.alarm_id`."""
    outcome = await intake.receive(session, ctx, principal, body)
    alarm = outcome.alarm
    if outcome.incident is None:
        await session.flush()
        reason = alarm.reason or ""
        details: dict[str, Any] = {"alarm_id": alarm.id, "account": alarm.account}
        if alarm.duplicate_of is not None:
            details["duplicate_of"] = alarm.duplicate_of
        if reason == "too_old":
            details["max_age_s"] = ctx.settings.alarm_max_age_s
        return JSONResponse(
            error_body(reason, outcome.message, details),
            status_code=intake.REJECTION_STATUS[reason],
            headers={"Location": f"/api/v1/alarms/{alarm.id}"},
        )
    response.headers["Location"] = f"/api/v1/alarms/{alarm.id}"
    return {
        **AlarmOut.model_validate(alarm).model_dump(),
        "incident": IncidentOut.model_validate(outcome.incident),
    }


@router.get("/alarms", response_model=Page[AlarmOut])
async def list_alarms(
    principal: Annotated[Principal, Depends(Allow("alarms:read", "alarms:write"))],
    session: ReadSessionDep,
    account: Annotated[str | None, Query(max_length=64)] = None,
    outcome: Outcome | None = None,
    reason: Reason | None = None,
    station_id: Annotated[str | None, SHORT_ID] = None,
    since: Instant | None = None,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
) -> object:
    """Alarms as received (accepted and rejected), newest first. A key that may only send
    alarms sees the ones it sent."""
    items, next_cursor = await queries.list_alarms(
        session,
        principal,
        account=account,
        outcome=outcome,
        reason=reason,
        station_id=station_id,
        since=utc(since, "since"),
        cursor=cursor,
        limit=limit,
    )
    return {"items": items, "next_cursor": next_cursor}


@router.get("/alarms/{alarm_id}", response_model=AlarmOut)
async def get_alarm(
    principal: Annotated[Principal, Depends(Allow("alarms:read", "alarms:write"))],
    alarm_id: str,
    session: ReadSessionDep,
) -> object:
    return await queries.get(session, principal, alarm_id)


@router.post(
    "/alarms/{alarm_id}/cancel",
    response_model=AlarmOut,
    responses=conflict("`invalid_transition`: the alarm was rejected or its incident has ended"),
)
async def cancel_alarm(
    principal: Annotated[Principal, Depends(Allow("alarms:write", "incidents:operate"))],
    alarm_id: str,
    session: SessionDep,
    ctx: CtxDep,
    body: AlarmCancel | None = None,
) -> object:
    """Keyholder cancel or false alarm: the incident is cancelled and its guards stood down."""
    return await cancel.cancel(session, ctx, principal, alarm_id, body or AlarmCancel())
