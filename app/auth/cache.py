"""Recently resolved bearer tokens, so a busy console or integration does not pay a JWT
check and a database read on every request.

A revocation made through this process (API key, device token, guard leaving) clears the
cache when it commits; one made by another process (a second worker, the CLI) takes
effect within `ttl_s`. Keys are SHA-256 digests: no bearer secret stays in memory.
"""

from __future__ import annotations

import hashlib
import time
from typing import TYPE_CHECKING

import jwt

from app.auth.principal import Principal, resolve_token

if TYPE_CHECKING:
    from app.context import AppContext


class PrincipalCache:
    def __init__(self, ttl_s: float, max_entries: int = 20_000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: dict[bytes, tuple[float, Principal]] = {}
        # Bumped by clear(): a lookup that began before a revocation committed must not
        # put its (stale) answer back afterwards.
        self.generation = 0

    def get(self, token: str) -> Principal | None:
        key = _digest(token)
        found = self._entries.get(key)
        if found is None:
            return None
        if found[0] <= time.monotonic():
            del self._entries[key]
            return None
        return found[1]

    def put(
        self, token: str, principal: Principal, generation: int, valid_for_s: float | None = None
    ) -> None:
        """Remember for ttl_s (or less, `valid_for_s`), unless cleared since `generation`."""
        ttl = self.ttl_s if valid_for_s is None else min(self.ttl_s, valid_for_s)
        if ttl <= 0 or generation != self.generation:
            return
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[_digest(token)] = (time.monotonic() + ttl, principal)

    def clear(self) -> None:
        self.generation += 1
        self._entries.clear()


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def authenticate_token(ctx: AppContext, token: str) -> Principal | None:
    """The principal behind a bearer token (any kind), or None if it is not valid now."""
    cache = ctx.principals
    principal = cache.get(token)
    if principal is not None:
        return principal
    generation = cache.generation
    async with ctx.db.transaction(readonly=True) as session:
        principal = await resolve_token(session, token, ctx.settings.secret_key.get_secret_value())
    if principal is not None:
        cache.put(token, principal, generation, _seconds_left(principal, token))
    return principal


def _seconds_left(principal: Principal, token: str) -> float | None:
    """An access token (already verified) is not trusted past its own expiry."""
    if principal.kind != "user":
        return None
    claims = jwt.decode(token, options={"verify_signature": False})
    return float(claims["exp"]) - time.time()
