"""/api/v1/webhooks: subscriptions, their deliveries and attempts, replay."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import Field, StringConstraints

from app.api.deps import Allow, CtxDep, ReadSessionDep, SessionDep
from app.api.openapi import conflict
from app.api.pagination import DEFAULT_LIMIT, Cursor, Limit
from app.auth.principal import Principal
from app.errors import NotFound
from app.integrations import webhooks
from app.schemas import Input, ObjectId, Output, Page, UtcDateTime

router = APIRouter(prefix="/webhooks", tags=["webhooks"])
NOT_NOW = conflict(
    "`webhook_disabled`: its subscription is deleted; "
    "`delivery_in_flight`: it is being sent right now"
)


class SubscriptionCreate(Input):
    url: Annotated[str, StringConstraints(min_length=8, max_length=2000)]
    event_types: Annotated[list[str], Field(min_length=1, max_length=32)]
    station_id: ObjectId | None = None


class SubscriptionOut(Output):
    id: str
    url: str
    event_types: list[str]
    station_id: str | None
    active: bool
    disabled_reason: str | None
    created_at: UtcDateTime
    updated_at: UtcDateTime


class SubscriptionCreated(SubscriptionOut):
    secret: str


class AttemptOut(Output):
    attempted_at: UtcDateTime
    status_code: int | None
    latency_ms: float
    response_excerpt: str | None
    error: str | None


class DeliveryOut(Output):
    id: str
    subscription_id: str
    event_id: str
    event_type: str
    status: str
    attempts: int
    next_attempt_at: UtcDateTime | None
    last_attempt_at: UtcDateTime | None
    delivered_at: UtcDateTime | None
    created_at: UtcDateTime
    payload: dict[str, Any]


class DeliveryWithAttempts(DeliveryOut):
    attempt_log: list[AttemptOut]


def _delivery(delivery: Any, attempts: list[Any] | None = None) -> dict[str, Any]:
    out = DeliveryOut.model_validate(
        {
            **{c: getattr(delivery, c) for c in DeliveryOut.model_fields if c != "event_id"},
            "event_id": str(delivery.event_id),
        }
    ).model_dump()
    if attempts is not None:
        out["attempt_log"] = attempts
    return out


@router.post("", status_code=201, response_model=SubscriptionCreated)
async def create_webhook(
    principal: Annotated[Principal, Depends(Allow("webhooks:manage"))],
    body: SubscriptionCreate,
    ctx: CtxDep,
) -> object:
    """Subscribe a URL to event types; the signing `secret` is shown once. A URL whose
    host is or resolves to a loopback, private, link-local… address is refused (422)."""
    await webhooks.vet_url(ctx, body.url)  # DNS first: no transaction held meanwhile
    async with ctx.db.transaction() as session:
        subscription, secret = await webhooks.create_subscription(
            session,
            ctx,
            principal,
            url=body.url,
            event_types=body.event_types,
            station_id=body.station_id,
        )
    return {**SubscriptionOut.model_validate(subscription).model_dump(), "secret": secret}


@router.get("", response_model=Page[SubscriptionOut])
async def list_webhooks(
    principal: Annotated[Principal, Depends(Allow("webhooks:manage"))],
    session: ReadSessionDep,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
) -> object:
    items, next_cursor = await webhooks.list_subscriptions(session, principal, cursor, limit)
    return {"items": items, "next_cursor": next_cursor}


@router.get("/{subscription_id}", response_model=SubscriptionOut)
async def get_webhook(
    principal: Annotated[Principal, Depends(Allow("webhooks:manage"))],
    subscription_id: str,
    session: ReadSessionDep,
) -> object:
    return await webhooks.get_subscription(session, principal, subscription_id)


@router.delete("/{subscription_id}", status_code=204)
async def delete_webhook(
    principal: Annotated[Principal, Depends(Allow("webhooks:manage"))],
    subscription_id: str,
    session: SessionDep,
    ctx: CtxDep,
) -> None:
    subscription = await webhooks.get_subscription(session, principal, subscription_id)
    await webhooks.deactivate(session, ctx, subscription, "deleted", principal.actor, delete=True)


@router.get("/{subscription_id}/deliveries", response_model=Page[DeliveryWithAttempts])
async def list_deliveries(
    principal: Annotated[Principal, Depends(Allow("webhooks:manage"))],
    subscription_id: str,
    session: ReadSessionDep,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
) -> object:
    """Deliveries newest first, each with every attempt (status, latency, response excerpt)."""
    rows, next_cursor = await webhooks.list_deliveries(
        session, principal, subscription_id, cursor, limit
    )
    return {
        "items": [_delivery(r["delivery"], r["attempts"]) for r in rows],
        "next_cursor": next_cursor,
    }


@router.post("/deliveries/{delivery_id}/replay", response_model=DeliveryOut, responses=NOT_NOW)
async def replay_delivery(
    principal: Annotated[Principal, Depends(Allow("webhooks:manage"))],
    delivery_id: str,
    session: SessionDep,
    ctx: CtxDep,
) -> object:
    """Send a delivery again now, with the same webhook-id."""
    try:
        return _delivery(await webhooks.replay(session, ctx, principal, delivery_id))
    except NotFound:
        # Missing, or its subscription is another station's: the same answer, naming only
        # what the path names.
        raise NotFound(f"delivery '{delivery_id}' not found") from None
