"""Where on-duty guards are and what they do, as consoles see it: from the live index.

Shared by the REST snapshot (`GET /api/v1/guards/positions`) and the live feed
(`/ws/positions`). Positions come from the live index, never the position table; names
and badges from one database read for the guards in view (the index holds no names).
"""

from __future__ import annotations

import functools
import json
import math
import time
from collections.abc import Iterable
from json.encoder import encode_basestring_ascii as _quote
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.principal import Principal
from app.clock import isoformat
from app.dispatch.guard_state import GuardState, guard_state
from app.geo.bbox import BBox
from app.geo.live_index import GuardEntry, LiveIndex
from app.models import Guard

if TYPE_CHECKING:
    from app.context import AppContext

_new = tuple.__new__
NAME_READ_CHUNK = 500  # ids per IN (...) list, well under both databases' parameter limits
Names = dict[str, tuple[str, str]]  # guard id → (name, badge_no)


class GuardPosition(NamedTuple):
    """One on-duty guard as a console sees it; equal tuples mean nothing to send."""

    guard_id: str
    company_id: str
    lat: float
    lon: float
    accuracy_m: float | None
    seen_at: float  # server time of the last accepted ping, epoch s
    state: GuardState
    incident_id: str | None


class Viewer(NamedTuple):
    """What one caller may see: a box (None: everywhere) and a company (None: every one)."""

    bbox: BBox | None
    company_id: str | None

    def sees(self, position: GuardPosition) -> bool:
        if self.company_id is not None and position.company_id != self.company_id:
            return False
        return self.bbox is None or self.bbox.contains(position.lat, position.lon)


def company_scope(principal: Principal) -> str | None:
    """A company manager sees their own company's guards only; other callers see all."""
    return principal.company_id if principal.role == "company_manager" else None


def describe(entry: GuardEntry, now: float, fresh_after: float) -> GuardPosition | None:
    """The guard's position and state, or None when it is not shown (off duty, never
    located)."""
    if not entry.on_duty or not entry.located_at:
        return None
    state = guard_state(
        connected=entry.connected,
        seen_at=entry.seen_at,
        fresh_after=fresh_after,
        activity=entry.activity,
        eligible=entry.eligible and entry.eligible_until > now,
    )
    # tuple.__new__ skips NamedTuple's Python-level constructor (hot: once per change).
    return _new(
        GuardPosition,
        (
            entry.guard_id,
            entry.company_id,
            entry.lat,
            entry.lon,
            entry.accuracy_m,
            entry.seen_at,
            state,
            entry.incident_id,
        ),
    )


def positions_in_view(live: LiveIndex, viewer: Viewer, now: float) -> list[GuardPosition]:
    """Every shown guard the viewer may see, ordered by guard id."""
    fresh_after = now - live.freshness_s
    found = []
    for entry in live:
        position = describe(entry, now, fresh_after)
        if position is not None and viewer.sees(position):
            found.append(position)
    found.sort()
    return found


async def read_names(session: AsyncSession, guard_ids: Iterable[str]) -> Names:
    """Name and badge of each of these guards, in a few IN (...) reads."""
    ids = list(guard_ids)
    names: Names = {}
    for start in range(0, len(ids), NAME_READ_CHUNK):
        rows = await session.execute(
            select(Guard.id, Guard.name, Guard.badge_no).where(
                Guard.id.in_(ids[start : start + NAME_READ_CHUNK])
            )
        )
        names.update((guard_id, (name, badge)) for guard_id, name, badge in rows.all())
    return names


@functools.lru_cache(maxsize=1024)
def _iso_second(second: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))


def seen_at_iso(seen_at: float) -> str:
    """Epoch seconds as `isoformat` writes them (microseconds rounded half-even, none when
    zero), several times faster: the feed formats a time per guard per tick."""
    second = math.floor(seen_at)
    micro = round((seen_at - second) * 1e6)
    if micro >= 1_000_000:
        second, micro = second + 1, micro - 1_000_000
    text = _iso_second(second)
    return f"{text}.{micro:06d}Z" if micro else f"{text}Z"


def update_item(position: GuardPosition) -> dict[str, Any]:
    """What changes about a guard a client already knows."""
    return {
        "guard_id": position.guard_id,
        "position": {"lat": position.lat, "lon": position.lon},
        "accuracy_m": position.accuracy_m,
        "seen_at": seen_at_iso(position.seen_at),
        "state": position.state,
        "incident_id": position.incident_id,
    }


def full_item(position: GuardPosition, names: Names) -> dict[str, Any]:
    """Everything about a guard, for a snapshot or a client that does not know it yet."""
    name, badge_no = names.get(position.guard_id, (None, None))
    return {
        "guard_id": position.guard_id,
        "name": name,
        "badge_no": badge_no,
        "company_id": position.company_id,
        **update_item(position),
    }


def encode(payload: Any) -> str:
    return json.dumps(payload, separators=(",", ":"))


def _json_text(value: str | None) -> str:
    return "null" if value is None else _quote(value)


def item_body(position: GuardPosition) -> str:
    """The encoded fields of `update_item` after guard_id, written directly: the feed
    encodes one per changed guard per tick (json.dumps of the dict costs ~3× more)."""
    accuracy = "null" if position.accuracy_m is None else repr(float(position.accuracy_m))
    return (
        f'"position":{{"lat":{position.lat!r},"lon":{position.lon!r}}},'
        f'"accuracy_m":{accuracy},"seen_at":"{seen_at_iso(position.seen_at)}",'
        f'"state":"{position.state}","incident_id":{_json_text(position.incident_id)}}}'
    )


def update_json(position: GuardPosition, body: str) -> str:
    """`update_item` encoded, from its `item_body`."""
    return f'{{"guard_id":{_quote(position.guard_id)},{body}'


def full_json(position: GuardPosition, body: str, names: Names) -> str:
    """`full_item` encoded, from its `item_body`."""
    name, badge_no = names.get(position.guard_id, (None, None))
    return (
        f'{{"guard_id":{_quote(position.guard_id)},"name":{_json_text(name)},'
        f'"badge_no":{_json_text(badge_no)},"company_id":{_quote(position.company_id)},{body}'
    )


async def snapshot(session: AsyncSession, ctx: AppContext, viewer: Viewer) -> dict[str, Any]:
    """The REST answer: every guard in view with name and badge, and the server time."""
    now = ctx.clock.now()
    positions = positions_in_view(ctx.live, viewer, now.timestamp())
    names = await read_names(session, (p.guard_id for p in positions))
    return {
        # A guard whose registry row is unreadable is left out rather than shown unnamed.
        "items": [full_item(p, names) for p in positions if p.guard_id in names],
        "at": isoformat(now),
    }
