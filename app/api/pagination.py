"""The query parameters of keyset pagination: `limit` (default 50, max 500) and an opaque
cursor (the paging itself is app/paging)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

DEFAULT_LIMIT = 50
MAX_LIMIT = 500

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="page size (max 500)")]
# Left out for the first page; an empty one is not a cursor this API returned (422).
Cursor = Annotated[
    str | None,
    Query(min_length=1, max_length=200, description="next_cursor of the previous page"),
]
