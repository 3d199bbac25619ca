"""Resolve a bearer token to the caller: a console user, an integration key or a guard device."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.permissions import INTEGRATION_SCOPES, ROLE_PERMISSIONS
from app.auth.secrets import decode_access_token, secret_matches, split_bearer
from app.errors import Forbidden
from app.models import ApiKey, Guard, GuardToken, User


@dataclass(frozen=True)
class Principal:
    kind: Literal["user", "api_key", "guard", "system"]
    id: str
    role: str
    permissions: frozenset[str]
    name: str
    company_id: str | None = None
    station_id: str | None = None
    guard_id: str | None = None

    def own_station(self, station_id: str | None) -> str | None:
        """The station a station-scoped caller's query covers: its own, whatever it asks
        (asking for another is refused); anyone else's choice stands."""
        if self.station_id is None:
            return station_id
        if station_id not in (None, self.station_id):
            raise Forbidden(f"this credential is scoped to station '{self.station_id}'")
        return self.station_id

    @property
    def actor(self) -> str:
        """How this caller appears in events: 'user:usr_…', 'api_key:key_…', 'guard:grd_…'."""
        return f"{self.kind}:{self.guard_id or self.id}"


SYSTEM = Principal(
    kind="system", id="cli", role="admin", permissions=ROLE_PERMISSIONS["admin"], name="system"
)


async def resolve_token(session: AsyncSession, token: str, jwt_secret: str) -> Principal | None:
    """The principal behind a bearer token, or None if it is unknown, expired or revoked."""
    parts = split_bearer(token)
    if parts is not None and parts[0].startswith("key_"):
        return await _api_key(session, *parts)
    if parts is not None and parts[0].startswith("gdt_"):
        return await _guard_token(session, *parts)
    claims = decode_access_token(token, jwt_secret)
    if claims is None:
        return None
    user = await session.get(User, claims["sub"])
    if user is None or not user.active:
        return None
    return Principal(
        kind="user",
        id=user.id,
        role=user.role,
        permissions=ROLE_PERMISSIONS.get(user.role, frozenset()),
        name=user.username,
        company_id=user.company_id,
        station_id=user.station_id,
    )


async def _api_key(session: AsyncSession, key_id: str, secret: str) -> Principal | None:
    key = await session.get(ApiKey, key_id)
    if key is None or key.revoked_at is not None or not secret_matches(secret, key.secret_hash):
        return None
    return Principal(
        kind="api_key",
        id=key.id,
        role="integration",
        permissions=frozenset(key.scopes) & INTEGRATION_SCOPES,
        name=key.name,
        station_id=key.station_id,
    )


async def _guard_token(session: AsyncSession, token_id: str, secret: str) -> Principal | None:
    token = await session.get(GuardToken, token_id)
    if (
        token is None
        or token.revoked_at is not None
        or not secret_matches(secret, token.secret_hash)
    ):
        return None
    guard = await session.get(Guard, token.guard_id)
    if guard is None or guard.status == "left":
        return None
    return Principal(
        kind="guard",
        id=token.id,
        role="guard",
        permissions=ROLE_PERMISSIONS["guard"],
        name=guard.name,
        company_id=guard.company_id,
        guard_id=guard.id,
    )
