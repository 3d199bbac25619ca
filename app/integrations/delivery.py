"""Webhook delivery: signed per Standard Webhooks, retried with backoff for over 24 hours.

Deliveries are rows (the outbox); this worker sends the due ones concurrently, at most
`webhook_concurrency_per_endpoint` at a time per subscription, each with a timeout, so a
slow or dead receiver only ever delays itself. Every attempt is recorded: the status and
at most EXCERPT_BYTES of the answer, read with that cap (the rest is never read). Every
connection goes through the egress guard (app/integrations/egress.py): a target that is
or resolves to a refused address is a failed attempt, and nothing is sent to it.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import datetime as dt
import json
import logging
import random
import time
from collections import Counter
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, cast

import httpx
from sqlalchemy import ColumnElement, func, select, update
from standardwebhooks.webhooks import Webhook

from app.integrations.egress import EgressPolicy, EgressRefused, GuardedTransport
from app.integrations.sealing import unseal
from app.integrations.webhooks import deactivate
from app.models import WebhookAttempt, WebhookDelivery, WebhookSubscription

if TYPE_CHECKING:
    from app.context import AppContext

log = logging.getLogger(__name__)

# Seconds to wait before attempt n+1 after attempt n failed (the Standard Webhooks /
# Svix schedule): 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h — about 27.6 h in all.
RETRY_DELAYS_S = (5, 300, 1800, 7200, 18000, 36000, 36000)
MAX_ATTEMPTS = len(RETRY_DELAYS_S) + 1
COALESCE_S = 0.01
LEASE_MARGIN_S = 30  # a claimed delivery is due again this long after its request timeout
EXCERPT_BYTES = 1024  # of a receiver's answer kept with the attempt (UTF-8, whole characters)


def retry_delay(attempts: int, rng: random.Random) -> float | None:
    """Delay before the next attempt after `attempts` failures (±10 % jitter), or None: give up."""
    if attempts >= MAX_ATTEMPTS:
        return None
    base = RETRY_DELAYS_S[attempts - 1]
    return base * rng.uniform(0.9, 1.1)


class WebhookSender:
    """The delivery loop: claim what is due, send concurrently, record, reschedule."""

    def __init__(self, ctx: AppContext, client: httpx.AsyncClient | None = None) -> None:
        self.ctx = ctx
        self._client = client
        self._wake = asyncio.Event()
        self._inflight: dict[str, str] = {}  # delivery id → subscription id
        self._finished = False  # a delivery finished since the loop last woke
        self._overall = asyncio.Semaphore(64)
        self._rng = random.Random()
        settings = ctx.settings
        # Where deliveries may go; also what registration checks (webhooks.vet_url).
        self.egress = EgressPolicy(
            allow=tuple(settings.webhook_allow_networks),
            resolve_timeout_s=min(5.0, settings.webhook_timeout_s),
        )
        ctx.clock.on_change(self.wake)

    def wake(self) -> None:
        self._wake.set()

    def in_flight(self, delivery_id: str) -> bool:
        return delivery_id in self._inflight

    async def run(self) -> None:
        settings = self.ctx.settings
        self._client = self._client or httpx.AsyncClient(
            transport=GuardedTransport(self.egress),
            timeout=settings.webhook_timeout_s,
            follow_redirects=False,
            # Identity: the excerpt is cut from the bytes as they come, never inflated.
            headers={"User-Agent": "guard-dispatch-webhooks/1", "Accept-Encoding": "identity"},
        )
        tasks: set[asyncio.Task[None]] = set()
        try:
            while True:
                self._wake.clear()
                self._finished = False
                claimed: list[tuple[str, str]] = []
                try:
                    claimed = await self._claim()
                    for delivery_id, subscription_id in claimed:
                        self._inflight[delivery_id] = subscription_id
                        task = asyncio.create_task(self._deliver(delivery_id))
                        tasks.add(task)
                        task.add_done_callback(tasks.discard)
                    next_due = await self._next_due()
                except Exception:
                    log.exception("webhook loop pass failed")
                    next_due = None
                now = self.ctx.clock.now()
                if not claimed and next_due is not None and next_due <= now:
                    # Due but not claimable (still in flight past its lease): don't spin.
                    next_due = now + dt.timedelta(seconds=1)
                await self.ctx.clock.sleep_until(next_due, self._wake, cap_s=30.0)
                if self._finished and self._inflight:
                    # Woken by a finished delivery: let others finish too, then claim for
                    # all of them in one pass instead of two transactions per delivery.
                    await asyncio.sleep(COALESCE_S)
        finally:
            for task in tasks:
                task.cancel()
            await self._client.aclose()

    async def _claim(self) -> list[tuple[str, str]]:
        """Due deliveries, taken in turns across subscriptions and never more than a
        subscription's cap in flight, so one dead receiver's backlog never crowds out the
        others. Claiming leases a row: an UPDATE that moves its next attempt past the
        request timeout, kept only where it still found the row due, so no later pass or
        other worker takes it again, and after a crash it is simply due again."""
        ctx = self.ctx
        settings = ctx.settings
        cap = settings.webhook_concurrency_per_endpoint
        busy = Counter(self._inflight.values())
        now = ctx.clock.now()
        due = (
            select(
                WebhookDelivery.id,
                WebhookDelivery.subscription_id,
                WebhookDelivery.next_attempt_at,
                func.row_number()
                .over(
                    partition_by=WebhookDelivery.subscription_id,
                    order_by=(WebhookDelivery.next_attempt_at, WebhookDelivery.id),
                )
                .label("place"),
            )
            .where(*self._open_pending(), WebhookDelivery.next_attempt_at <= now)
            .subquery()
        )
        async with ctx.db.transaction(serial=False) as session:
            rows = (
                await session.execute(
                    select(due.c.id, due.c.subscription_id)
                    .where(due.c.place <= cap)
                    .order_by(due.c.place, due.c.next_attempt_at, due.c.id)
                    .limit(settings.webhook_batch)
                )
            ).all()
            wanted: dict[str, str] = {}
            for delivery_id, subscription_id in rows:
                if delivery_id not in self._inflight and busy[subscription_id] < cap:
                    busy[subscription_id] += 1
                    wanted[delivery_id] = subscription_id
            if not wanted:
                return []
            lease = now + dt.timedelta(seconds=settings.webhook_timeout_s + LEASE_MARGIN_S)
            # SKIP LOCKED: rows another replica is leasing right now are its to send.
            free = (
                select(WebhookDelivery.id)
                .where(
                    WebhookDelivery.id.in_(list(wanted)),
                    WebhookDelivery.status == "pending",
                    WebhookDelivery.next_attempt_at <= now,
                )
                .with_for_update(skip_locked=True)
            )
            leased = await session.scalars(
                update(WebhookDelivery)
                .where(
                    WebhookDelivery.id.in_(free.scalar_subquery()),
                    WebhookDelivery.status == "pending",
                    WebhookDelivery.next_attempt_at <= now,
                )
                .values(next_attempt_at=lease)
                .returning(WebhookDelivery.id)
            )
            return [(delivery_id, wanted[delivery_id]) for delivery_id in leased.all()]

    async def _next_due(self) -> dt.datetime | None:
        """When the next claim can find work: subscriptions already at their cap wait for
        a delivery of theirs to finish, which wakes the loop anyway."""
        stmt = select(func.min(WebhookDelivery.next_attempt_at)).where(*self._open_pending())
        async with self.ctx.db.transaction(readonly=True) as session:
            return await session.scalar(stmt)

    def _open_pending(self) -> list[ColumnElement[bool]]:
        """Pending deliveries of subscriptions not already at their cap in flight."""
        cap = self.ctx.settings.webhook_concurrency_per_endpoint
        full = [s for s, n in Counter(self._inflight.values()).items() if n >= cap]
        conditions = [WebhookDelivery.status == "pending"]
        if full:
            conditions.append(WebhookDelivery.subscription_id.not_in(full))
        return conditions

    async def _deliver(self, delivery_id: str) -> None:
        # _claim keeps each subscription within its cap; this bounds them all together.
        try:
            async with self._overall:
                await self._attempt(delivery_id)
        except Exception:
            log.exception("webhook delivery %s failed unexpectedly", delivery_id)
        finally:
            self._inflight.pop(delivery_id, None)
            self._finished = True
            self.wake()

    async def _attempt(self, delivery_id: str) -> None:
        ctx = self.ctx
        async with ctx.db.transaction(readonly=True) as session:
            row = (
                await session.execute(
                    select(WebhookDelivery, WebhookSubscription)
                    .join(
                        WebhookSubscription,
                        WebhookSubscription.id == WebhookDelivery.subscription_id,
                    )
                    .where(WebhookDelivery.id == delivery_id)
                )
            ).first()
        if row is None:
            return
        delivery, subscription = row
        if delivery.status != "pending" or not subscription.active:
            return
        body = json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True)
        sent_at = dt.datetime.now(dt.UTC)
        secret = unseal(subscription.sealed_secret, ctx.settings.secret_key.get_secret_value())
        headers = {
            "content-type": "application/json",
            "webhook-id": delivery.id,
            "webhook-timestamp": str(int(sent_at.timestamp())),
            "webhook-signature": Webhook(secret).sign(delivery.id, sent_at, body),
        }
        started = time.perf_counter()
        status_code: int | None = None
        excerpt: str | None = None
        error: str | None = None
        timeout_s = ctx.settings.webhook_timeout_s
        deadline = asyncio.get_running_loop().time() + timeout_s
        try:
            assert self._client is not None
            request = self._client.build_request(
                "POST", subscription.url, content=body, headers=headers
            )
            # The whole exchange is bounded, not only each read: a receiver dripping a
            # byte at a time holds a concurrency slot no longer than the timeout.
            async with asyncio.timeout_at(deadline):
                response = await self._client.send(request, stream=True)
            try:
                status_code = response.status_code
                excerpt = await read_excerpt(response, deadline)
            finally:
                await response.aclose()
        except EgressRefused as exc:
            error = f"refused: {exc}"[:500]
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        except TimeoutError:
            error = f"no answer within {timeout_s:g} s"
        except httpx.InvalidURL as exc:  # stored before the URL rules of today
            error = f"invalid URL: {exc}"[:500]
        latency_ms = (time.perf_counter() - started) * 1000
        ok = status_code is not None and 200 <= status_code < 300
        ctx.metrics.webhook_attempts.labels(
            "ok" if ok else "error" if status_code is None else str(status_code)
        ).inc()
        await self._record(
            delivery.id, subscription.id, status_code, latency_ms, excerpt, error, ok
        )

    async def _record(
        self,
        delivery_id: str,
        subscription_id: str,
        status_code: int | None,
        latency_ms: float,
        excerpt: str | None,
        error: str | None,
        ok: bool,
    ) -> None:
        ctx = self.ctx
        now = ctx.clock.now()
        gone = status_code == 410
        async with ctx.db.transaction(serial=gone) as session:
            delivery = await session.get(WebhookDelivery, delivery_id)
            if delivery is None or delivery.status != "pending":
                return
            session.add(
                WebhookAttempt(
                    delivery_id=delivery_id,
                    attempted_at=now,
                    status_code=status_code,
                    latency_ms=round(latency_ms, 2),
                    response_excerpt=excerpt,
                    error=error,
                )
            )
            delivery.attempts += 1
            delivery.last_attempt_at = now
            if ok:
                delivery.status, delivery.delivered_at, delivery.next_attempt_at = (
                    "delivered",
                    now,
                    None,
                )
            elif gone:
                subscription = await session.get(WebhookSubscription, subscription_id)
                assert subscription is not None
                await deactivate(
                    session, ctx, subscription, "receiver answered 410 Gone", "system:webhooks"
                )
                delivery.status, delivery.next_attempt_at = "failed", None
            else:
                delay = retry_delay(delivery.attempts, self._rng)
                if delay is None:
                    delivery.status, delivery.next_attempt_at = "failed", None
                else:
                    delivery.next_attempt_at = now + dt.timedelta(seconds=delay)

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait until nothing is in flight (tests and shutdown)."""
        async with asyncio.timeout(timeout):
            while self._inflight:
                await asyncio.sleep(0.01)


async def read_excerpt(response: httpx.Response, deadline: float) -> str:
    """At most EXCERPT_BYTES of the answer's body as text, read with that cap: the rest
    is never read (closing the response drops the connection). What came before the
    deadline or a broken connection is kept."""
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    data = bytearray()
    with contextlib.suppress(TimeoutError, httpx.HTTPError):
        async with asyncio.timeout_at(deadline):
            chunks = cast(AsyncGenerator[bytes, None], response.aiter_raw())
            async with contextlib.aclosing(chunks):
                async for chunk in chunks:
                    data += chunk[: EXCERPT_BYTES + 1 - len(data)]
                    if len(data) > EXCERPT_BYTES:
                        break
    if encoding not in ("", "identity"):
        return f"({encoding}-encoded answer, not kept)"
    return excerpt_text(bytes(data), response.charset_encoding)


def excerpt_text(data: bytes, charset: str | None = None, limit: int = EXCERPT_BYTES) -> str:
    """The first `limit` bytes as text in whole characters: at most `limit` bytes of UTF-8,
    undecodable bytes replaced, no NUL (PostgreSQL's text refuses it)."""
    try:
        decoder = codecs.getincrementaldecoder(charset or "utf-8")(errors="replace")
    except LookupError:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    text = decoder.decode(data[:limit], final=len(data) <= limit).replace("\x00", "\ufffd")
    return text.encode("utf-8", "replace")[:limit].decode("utf-8", "ignore")
