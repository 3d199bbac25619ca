"""Webhook subscriptions, and the outbox: events become deliveries in the same transaction."""

from __future__ import annotations

import base64
import os
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import ColumnElement, Select, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.principal import Principal
from app.clock import isoformat
from app.db import after_commit
from app.errors import Conflict, NotFound, Unprocessable
from app.events.log import event_json
from app.ids import new_id
from app.integrations.egress import EgressPolicy, EgressRefused, Unresolved
from app.integrations.sealing import seal
from app.models import Event, PoliceStation, WebhookAttempt, WebhookDelivery, WebhookSubscription
from app.paging import paginate

if TYPE_CHECKING:
    from app.context import AppContext

# Internal event type → the webhook event type receivers subscribe to.
WEBHOOK_TYPES: dict[str, str] = {
    "incident.created": "incident.created",
    "escalation.sent": "incident.escalated",
    "incident.assigned": "incident.assigned",
    "assignment.on_scene": "guard.on_scene",
    "incident.unstaffed": "incident.unstaffed",
    "escalation.acknowledged": "escalation.acknowledged",
    "escalation.police_on_scene": "escalation.police_on_scene",
    "escalation.handed_over": "escalation.handed_over",
    "incident.resolved": "incident.resolved",
    "incident.cancelled": "incident.cancelled",
    "incident.closed": "incident.closed",
    "alarm.accepted": "alarm.accepted",
    "alarm.rejected": "alarm.rejected",
    "intel.reported": "intel.reported",
    "intel.triaged": "intel.triaged",
    "broadcast.created": "broadcast.created",
}
SUBSCRIBABLE = frozenset(WEBHOOK_TYPES.values())


def check_url(url: str, policy: EgressPolicy) -> tuple[str, int]:
    """The (host, port) an absolute http(s) URL sends to, as the HTTP client will read
    them; 422 on `url` for anything else, or for a host that names a refused address
    itself (an IP literal, an IPv4 number such as `2130706433`, `localhost`)."""
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
    except ValueError:
        raise Unprocessable("url", "must be an absolute http(s) URL") from None
    if parts.scheme not in ("http", "https") or not hostname:
        raise Unprocessable("url", "must be an absolute http(s) URL")
    if parts.username or parts.password:
        raise Unprocessable("url", "must not carry credentials")
    refused = policy.literal_refusal(hostname)
    if refused is not None:
        raise Unprocessable("url", refused)
    try:
        parsed = httpx.URL(url)
        host = parsed.raw_host.decode("ascii")
    except (httpx.InvalidURL, UnicodeError) as exc:
        raise Unprocessable("url", f"is not a valid URL ({exc})") from None
    if parsed.userinfo or not host:
        raise Unprocessable("url", "must be an absolute http(s) URL without credentials")
    refused = policy.literal_refusal(host)
    if refused is not None:
        raise Unprocessable("url", refused)
    return host, parsed.port or (443 if parsed.scheme == "https" else 80)


async def vet_url(ctx: AppContext, url: str) -> None:
    """check_url, then the host's DNS answer: 422 on `url` if any address it resolves to
    is refused. Call it before opening a transaction (a slow resolver holds no database
    writer). A name that does not resolve now is accepted: every delivery resolves and
    checks again, and connects only to an address it checked."""
    policy = ctx.webhooks.egress
    host, port = check_url(url, policy)
    try:
        await policy.addresses(host, port)
    except EgressRefused as exc:
        raise Unprocessable("url", str(exc)) from None
    except Unresolved:
        pass


def _visible(stmt: Select[Any], principal: Principal) -> Select[Any]:
    """Admins see every subscription; others those they made or of their station."""
    if principal.role == "admin":
        return stmt
    conditions = [WebhookSubscription.created_by == principal.actor]
    if principal.station_id is not None:
        conditions.append(WebhookSubscription.station_id == principal.station_id)
    return stmt.where(or_(*conditions))


async def create_subscription(
    session: AsyncSession,
    ctx: AppContext,
    principal: Principal,
    *,
    url: str,
    event_types: list[str],
    station_id: str | None,
) -> tuple[WebhookSubscription, str]:
    """A new subscription and its signing secret (`whsec_…`, shown once)."""
    check_url(url, ctx.webhooks.egress)  # the DNS check is vet_url's, before the transaction
    unknown = sorted(set(event_types) - SUBSCRIBABLE)
    if unknown:
        raise Unprocessable("event_types", f"unknown {unknown}; choose from {sorted(SUBSCRIBABLE)}")
    station_id = principal.own_station(station_id)
    if station_id is not None and await session.get(PoliceStation, station_id) is None:
        raise Unprocessable("station_id", f"no such station '{station_id}'")
    secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()
    now = ctx.clock.now()
    subscription = WebhookSubscription(
        id=new_id("whk"),
        url=url,
        sealed_secret=seal(secret, ctx.settings.secret_key.get_secret_value()),
        event_types=sorted(set(event_types)),
        station_id=station_id,
        active=True,
        created_by=principal.actor,
        created_at=now,
        updated_at=now,
    )
    session.add(subscription)
    await session.flush()
    await ctx.events.record(
        session,
        type="webhook.created",
        actor=principal.actor,
        at=now,
        station_id=station_id,
        data={
            "subscription_id": subscription.id,
            "url": url,
            "event_types": subscription.event_types,
        },
    )
    return subscription, secret


async def list_subscriptions(
    session: AsyncSession, principal: Principal, cursor: str | None, limit: int
) -> tuple[list[WebhookSubscription], str | None]:
    stmt = _visible(
        select(WebhookSubscription).where(WebhookSubscription.deleted_at.is_(None)), principal
    )
    return await paginate(session, stmt, WebhookSubscription.id, cursor, limit)


async def get_subscription(
    session: AsyncSession, principal: Principal, subscription_id: str
) -> WebhookSubscription:
    found = await session.scalar(
        _visible(
            select(WebhookSubscription).where(WebhookSubscription.id == subscription_id), principal
        )
    )
    if found is None or found.deleted_at is not None:
        raise NotFound(f"webhook '{subscription_id}' not found")
    return found


async def deactivate(
    session: AsyncSession,
    ctx: AppContext,
    subscription: WebhookSubscription,
    reason: str,
    actor: str,
    *,
    delete: bool = False,
) -> None:
    """Stop a subscription (deleted, or 410 Gone): its pending deliveries fail."""
    now = ctx.clock.now()
    subscription.active = False
    subscription.disabled_reason = reason
    subscription.updated_at = now
    if delete:
        subscription.deleted_at = now
    await session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.subscription_id == subscription.id, WebhookDelivery.status == "pending"
        )
        .values(status="failed", next_attempt_at=None)
    )
    await ctx.events.record(
        session,
        type="webhook.deleted" if delete else "webhook.disabled",
        actor=actor,
        at=now,
        station_id=subscription.station_id,
        data={"subscription_id": subscription.id, "reason": reason},
    )


async def list_deliveries(
    session: AsyncSession,
    principal: Principal,
    subscription_id: str,
    cursor: str | None,
    limit: int,
) -> tuple[list[dict[str, Any]], str | None]:
    """Deliveries newest first, each with its attempts."""
    await get_subscription(session, principal, subscription_id)
    stmt = select(WebhookDelivery).where(WebhookDelivery.subscription_id == subscription_id)
    deliveries, next_cursor = await paginate(
        session, stmt, WebhookDelivery.id, cursor, limit, newest_first=True
    )
    attempts: dict[str, list[WebhookAttempt]] = {d.id: [] for d in deliveries}
    if deliveries:
        rows = await session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id.in_(attempts))
            .order_by(WebhookAttempt.id)
        )
        for attempt in rows.all():
            attempts[attempt.delivery_id].append(attempt)
    return [{"delivery": d, "attempts": attempts[d.id]} for d in deliveries], next_cursor


async def replay(
    session: AsyncSession, ctx: AppContext, principal: Principal, delivery_id: str
) -> WebhookDelivery:
    """Send a delivery again, now, with the same webhook-id (receivers de-duplicate)."""
    delivery = await session.get(WebhookDelivery, delivery_id)
    if delivery is None:
        raise NotFound(f"delivery '{delivery_id}' not found")
    subscription = await get_subscription(session, principal, delivery.subscription_id)
    if not subscription.active:
        raise Conflict(
            f"webhook '{subscription.id}' is disabled ({subscription.disabled_reason})",
            code="webhook_disabled",
        )
    if ctx.webhooks.in_flight(delivery.id):
        raise Conflict(
            f"delivery '{delivery.id}' is being sent right now", code="delivery_in_flight"
        )
    delivery.status = "pending"
    delivery.attempts = 0
    delivery.next_attempt_at = ctx.clock.now()
    await ctx.events.record(
        session,
        type="webhook.replayed",
        actor=principal.actor,
        at=ctx.clock.now(),
        station_id=subscription.station_id,
        data={"delivery_id": delivery.id, "subscription_id": subscription.id},
    )
    after_commit(session, ctx.webhooks.wake)
    return delivery


class WebhookOutbox:
    """EventLog outbox writer: one delivery row per matching subscription, same transaction."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    async def __call__(self, session: AsyncSession, event: Event) -> None:
        webhook_type = WEBHOOK_TYPES.get(event.type)
        if webhook_type is None:
            return
        stations: list[ColumnElement[bool]] = [WebhookSubscription.station_id.is_(None)]
        if event.station_id is not None:
            stations.append(WebhookSubscription.station_id == event.station_id)
        subscriptions = (
            await session.scalars(
                select(WebhookSubscription).where(
                    WebhookSubscription.active.is_(True), or_(*stations)
                )
            )
        ).all()
        payload = {
            "type": webhook_type,
            "timestamp": isoformat(event.at),
            "data": event_json(event),
        }
        created = 0
        for subscription in subscriptions:
            if webhook_type in subscription.event_types:
                session.add(
                    WebhookDelivery(
                        id=new_id("msg"),
                        subscription_id=subscription.id,
                        event_id=event.id,
                        event_type=webhook_type,
                        payload=payload,
                        status="pending",
                        attempts=0,
                        next_attempt_at=event.at,
                        created_at=event.at,
                    )
                )
                created += 1
        if created:
            after_commit(session, self.ctx.webhooks.wake)
