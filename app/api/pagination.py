"""Keyset pagination over time-ordered ids: `limit` (default 50, max 500) and an opaque cursor."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Annotated, Any

from fastapi import Query
from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from app.errors import Unprocessable

DEFAULT_LIMIT = 50
MAX_LIMIT = 500

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="page size (max 500)")]
# Left out for the first page; an empty one is not a cursor this API returned (422).
Cursor = Annotated[
    str | None,
    Query(min_length=1, max_length=200, description="next_cursor of the previous page"),
]


def encode_cursor(last_key: Any) -> str:
    raw = json.dumps({"k": last_key}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> Any:
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = json.loads(raw)["k"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise Unprocessable("cursor", "not a cursor returned by this API") from None
    if not isinstance(value, str | int):
        raise Unprocessable("cursor", "not a cursor returned by this API")
    return value


async def paginate(
    session: AsyncSession,
    stmt: Select[Any],
    key: InstrumentedAttribute[Any],
    cursor: str | None,
    limit: int,
    *,
    newest_first: bool = False,
) -> tuple[list[Any], str | None]:
    """One page of `stmt` ordered by `key`, and the cursor of the next page (or None)."""
    after = decode_cursor(cursor)
    if after is not None:
        stmt = stmt.where(key < after if newest_first else key > after)
    stmt = stmt.order_by(key.desc() if newest_first else key.asc()).limit(limit + 1)
    rows = list((await session.scalars(stmt)).all())
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, encode_cursor(getattr(rows[-1], key.key))
