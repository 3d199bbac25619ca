"""Who is on a console websocket: a bearer header, or a first frame `hello {token}`.

Never a token in the URL (URLs end up in logs).
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

from fastapi import WebSocket

from app.api.deps import bearer_token
from app.auth.cache import authenticate_token
from app.auth.principal import Principal

if TYPE_CHECKING:
    from app.context import AppContext


async def authenticate_socket(ctx: AppContext, ws: WebSocket) -> Principal | None:
    """The caller, or None for a missing, bad or revoked token (close with 4401)."""
    token = bearer_token(ws.headers.get("authorization"))
    if token is None:
        try:
            first = json.loads(
                await asyncio.wait_for(ws.receive_text(), ctx.settings.ws_hello_timeout_s)
            )
        except (TimeoutError, ValueError, KeyError):
            return None
        token = (
            first.get("token") if isinstance(first, dict) and first.get("type") == "hello" else None
        )
        if not isinstance(token, str):
            return None
    return await authenticate_token(ctx, token)
