"""Recording security events: who, from which address, when (UTC, to 10 ms), what.

Two ways in:

- `record(session, …)` writes in the caller's transaction, so the record commits (or
  rolls back) with the change it describes: a track read, a token issued.
- `note(…)` queues a record when there is no transaction to join, or the request is about
  to fail and roll its own back: a failed sign-in, a lockout, a 403. The queue is written
  within a moment by the audit loop (app/housekeeping.py), before every audit read and at
  shutdown, and is bounded: a flood of refused requests cannot grow it without limit (what
  does not fit is dropped, but counted and logged: never silently).

Changes to users, API keys and guard device tokens are already events in the incident
log; `mirror` (an EventLog outbox writer) copies those into the audit log in the same
transaction, so no writer has to remember a second call.
"""

from __future__ import annotations

import datetime as dt
import logging
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Protocol, cast

from sqlalchemy import Table, insert
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection, Request

from app.audit.chain import join_writers
from app.auth.address import client_address
from app.clock import isoformat
from app.models import AuditRecord, Event

if TYPE_CHECKING:
    from app.context import AppContext

log = logging.getLogger("app.audit")

_AUDIT = cast(Table, AuditRecord.__table__)
_INSERT = insert(_AUDIT)
MAX_PENDING = 10_000  # queued records at most; beyond, they are counted as dropped
ANONYMOUS = "anonymous"

# The client address of the request being served, for records written deep in a service
# (set where the request is authenticated, app/api/deps.py).
client_address_var: ContextVar[str | None] = ContextVar("audit_client_address", default=None)

# Incident-log events that are security events too (prefixes of their types).
MIRRORED = ("user.", "api_key.", "guard.token_")
# Which id in an event's data names what it is about, and how the audit log writes it.
_SUBJECT_KEYS = (("user_id", "user"), ("api_key_id", "api_key"), ("guard_id", "guard"))


class SignIn(Protocol):
    """What app/auth/signin.py decides of one attempt (the fields the audit log keeps)."""

    @property
    def succeeded(self) -> bool: ...
    @property
    def username(self) -> str: ...
    @property
    def user_id(self) -> str | None: ...
    @property
    def reason(self) -> str | None: ...
    @property
    def locked_until(self) -> dt.datetime | None: ...
    @property
    def lock_started(self) -> bool: ...


def to_10ms(at: dt.datetime) -> dt.datetime:
    """UTC, cut to 10 ms: what an audit record's time keeps."""
    at = at.astimezone(dt.UTC)
    return at.replace(microsecond=at.microsecond - at.microsecond % 10_000)


def request_address(connection: HTTPConnection) -> str:
    """The address an audit record of this request shows: the client's, as throttling sees
    it (X-Forwarded-For believed from DISPATCH_TRUSTED_PROXIES only)."""
    ctx: AppContext | None = getattr(connection.app.state, "ctx", None)
    return client_address(connection, ctx.settings.trusted_proxy_networks if ctx else ())


def bind_request(connection: HTTPConnection) -> None:
    """Records this request writes from now on carry its client's address."""
    client_address_var.set(request_address(connection))


class AuditLog:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self._pending: list[dict[str, Any]] = []
        self.dropped = 0

    def _row(
        self,
        type: str,
        actor: str,
        address: str | None,
        subject: str | None,
        data: dict[str, Any] | None,
        at: dt.datetime | None,
    ) -> dict[str, Any]:
        return {
            "at": to_10ms(at or self.ctx.clock.now()),
            "type": type,
            "actor": actor[:80],
            "address": None if address is None else address[:64],
            "subject": None if subject is None else subject[:200],
            "data": data or {},
        }

    async def record(
        self,
        session: AsyncSession,
        type: str,
        *,
        actor: str,
        subject: str | None = None,
        data: dict[str, Any] | None = None,
        address: str | None = None,
        at: dt.datetime | None = None,
    ) -> None:
        """Append a record in the session's transaction. `address` defaults to the client
        of the request being served (none outside a request: the CLI, a background task)."""
        row = self._row(type, actor, address or client_address_var.get(), subject, data, at)
        await join_writers(session)
        await session.execute(_INSERT, [row])

    def note(
        self,
        type: str,
        *,
        actor: str,
        address: str | None,
        subject: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        """Queue a record stamped now; written by `flush`."""
        if len(self._pending) >= MAX_PENDING:
            self.dropped += 1
            log.error("audit queue full: %s by %s from %s not recorded", type, actor, address)
            return
        self._pending.append(self._row(type, actor, address, subject, data, None))

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def flush(self) -> int:
        """Write the queued records in one transaction; on failure they stay queued."""
        rows, self._pending = self._pending, []
        if not rows:
            return 0
        try:
            async with self.ctx.db.transaction(serial=False) as session:
                await join_writers(session)
                await session.execute(_INSERT, rows)
        except BaseException:
            self._pending[:0] = rows[: MAX_PENDING - len(self._pending)]
            raise
        return len(rows)

    def sign_in(self, address: str, result: SignIn, expires_in: int | None = None) -> None:
        """One sign-in attempt as app/auth/signin.py decided it: `auth.sign_in` (a token
        issued), `auth.sign_in_failed` (with the reason, which the caller is not told), and
        `auth.locked_out` when this failure locked the account."""
        subject = f"user:{result.user_id}" if result.user_id else None
        if result.succeeded:
            self.note(
                "auth.sign_in",
                actor=subject or ANONYMOUS,
                address=address,
                subject=subject,
                data={"username": result.username, "expires_in": expires_in},
            )
            return
        self.note(
            "auth.sign_in_failed",
            actor=ANONYMOUS,
            address=address,
            subject=subject,
            data={"username": result.username, "reason": result.reason},
        )
        if result.lock_started and result.locked_until is not None:
            self.note(
                "auth.locked_out",
                actor=ANONYMOUS,
                address=address,
                subject=subject,
                data={"username": result.username, "locked_until": isoformat(result.locked_until)},
            )

    def sign_in_throttled(self, address: str, username: str, retry_after_s: int) -> None:
        """An attempt refused (429) before the password was looked at."""
        self.note(
            "auth.sign_in_failed",
            actor=ANONYMOUS,
            address=address,
            data={"username": username, "reason": "throttled", "retry_after_s": retry_after_s},
        )

    async def mirror(self, session: AsyncSession, event: Event) -> None:
        """EventLog outbox writer: user, API key and device-token events are audited."""
        if not event.type.startswith(MIRRORED):
            return
        await self.record(
            session,
            event.type,
            actor=event.actor,
            subject=subject_of(event.data),
            data=event.data,
            at=event.at,
        )


def refused(request: Request, code: str, message: str) -> None:
    """Audit a 403 answer: who was refused what (method and path), from where."""
    ctx: AppContext | None = getattr(request.app.state, "ctx", None)
    if ctx is None:
        return
    principal = getattr(request.state, "principal", None)
    ctx.audit.note(
        "access.denied",
        actor=principal.actor if principal is not None else ANONYMOUS,
        address=request_address(request),
        subject=f"{request.method} {request.url.path}",
        data={"code": code, "message": message[:500]},
    )


def subject_of(data: dict[str, Any]) -> str | None:
    for key, kind in _SUBJECT_KEYS:
        if data.get(key):
            return f"{kind}:{data[key]}"
    return None
