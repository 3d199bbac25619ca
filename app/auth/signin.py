"""Signing in with a username and password: the outcome, account lockout, and its cost.

One attempt, in this order, never holding a database connection or the writer turn while
argon2 runs:

1. a place in the hashing queue (app/auth/hashing.py), or 429 at once when it is full;
2. the account, read in a short read-only transaction that ends before hashing;
3. argon2 verification in the bounded pool: against the account's hash, or a dummy hash
   when there is no such account, so a wrong username costs what a wrong password does;
4. the outcome decided and written in a short transaction that reads the account again
   (another attempt may have locked it meanwhile); every attempt takes it, whether the
   account exists or not, so that its duration tells nothing either.

Lockout (CJIS AC-7): `lockout_threshold` failures for one account within
`lockout_window_s` lock it for `lockout_duration_s`. While locked every attempt, even with
the right password, is refused exactly as a wrong password is (same answer, same hashing
cost) so a caller learns nothing; admins see `locked_until` on the user and may unlock it
(`POST /api/v1/users/{id}/unlock`). An attacker cannot keep the owner out for ever: the
lock has a fixed end that attempts during it do not push back, it lifts by itself, the
count starts again from zero after it, and the per-address throttle limits how often any
one address can lock an account again.

The outcome is explicit (succeeded / failed / locked, with the reason and whether this
attempt started the lock) so the audit log can record each with one call.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import select

from app.auth.hashing import HASHING
from app.context import AppContext
from app.models import User

Outcome = Literal["succeeded", "failed", "locked"]
# Why an attempt did not succeed: for the audit log and admins, never told to the caller.
Reason = Literal["unknown_user", "inactive", "wrong_password", "locked"]


@dataclass(frozen=True)
class SignIn:
    """What one attempt came to. The caller is told only succeeded or not."""

    outcome: Outcome
    username: str  # as typed
    user_id: str | None = None  # the account named, when there is one
    role: str | None = None
    reason: Reason | None = None  # None when it succeeded
    locked_until: dt.datetime | None = None  # when outcome == "locked"
    lock_started: bool = False  # this attempt's failure locked the account (a lockout)

    @property
    def succeeded(self) -> bool:
        return self.outcome == "succeeded"


async def sign_in(ctx: AppContext, username: str, password: str) -> SignIn:
    """Check a username and password; see the module's docstring for the steps."""
    HASHING.admit()  # raises 429 Busy when the queue is full
    try:
        async with ctx.db.transaction(readonly=True) as session:
            account = (
                await session.execute(
                    select(User.id, User.password_hash).where(User.username == username)
                )
            ).one_or_none()
        # The transaction has ended: no connection or writer turn is held from here.
        matches = await HASHING.verify(account.password_hash if account else None, password)
    finally:
        HASHING.leave()
    return await _decide(ctx, username, account.id if account else None, matches)


async def _decide(ctx: AppContext, username: str, account_id: str | None, matches: bool) -> SignIn:
    """The outcome of a verified attempt, decided on the account as it is now (another
    attempt may have locked it since it was read), and the failure counted. Every attempt
    takes this same short transaction, the unknown username, the inactive or the locked
    account included, so its duration does not tell them apart."""
    settings = ctx.settings
    # Not serial: it records no event, so it need not queue behind the dispatch path's
    # writers on PostgreSQL; the row lock orders concurrent attempts on one account.
    async with ctx.db.transaction(serial=False) as session:
        user = await session.scalar(select(User).where(User.username == username).with_for_update())
        now = ctx.clock.now()
        if user is None or user.id != account_id:  # none, or replaced since it was read
            return SignIn("failed", username, reason="unknown_user")
        if not user.active:
            return SignIn("failed", username, user.id, user.role, reason="inactive")
        if _locked(user.locked_until, now):
            # Not counted: attempts during a lock never push its end back.
            return SignIn("locked", username, user.id, user.role, "locked", user.locked_until)
        if matches:
            if user.failed_logins or user.locked_until is not None:
                clear_lock(user)
            return SignIn("succeeded", username, user.id, user.role)
        horizon = now - dt.timedelta(seconds=settings.lockout_window_s)
        recent = [at for at in map(_parse, user.failed_logins or []) if at > horizon]
        recent.append(now)
        if len(recent) < settings.lockout_threshold:
            user.failed_logins = [_format(at) for at in recent]
            return SignIn("failed", username, user.id, user.role, reason="wrong_password")
        user.failed_logins = []  # the count starts again once the lock has lifted
        user.locked_until = now + dt.timedelta(seconds=settings.lockout_duration_s)
        return SignIn(
            "locked", username, user.id, user.role, "wrong_password", user.locked_until, True
        )


def clear_lock(user: User) -> bool:
    """Lift the account's lock and forget its failures (in the caller's transaction);
    whether there was anything to clear."""
    changed = bool(user.failed_logins) or user.locked_until is not None
    user.failed_logins = []
    user.locked_until = None
    return changed


def locked_until(user: User, now: dt.datetime) -> dt.datetime | None:
    """When the account's lock lifts, or None when it is not locked now."""
    return user.locked_until if _locked(user.locked_until, now) else None


def recent_failures(user: User, now: dt.datetime, window_s: float) -> int:
    horizon = now - dt.timedelta(seconds=window_s)
    return sum(1 for at in map(_parse, user.failed_logins or []) if at > horizon)


def _locked(until: dt.datetime | None, now: dt.datetime) -> bool:
    return until is not None and until > now


def _format(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).isoformat()


def _parse(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).astimezone(dt.UTC)
