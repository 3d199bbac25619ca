"""Opening a console websocket (/ws/events, /ws/positions): origin, query, who, may they.

The token comes in a bearer header or a first frame `hello {token}`, never in the URL
(URLs end up in logs).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from fastapi import WebSocket
from starlette.websockets import WebSocketDisconnect

from app.api.deps import bearer_token
from app.auth.cache import authenticate_token
from app.auth.principal import Principal
from app.realtime.close_codes import CloseCode
from app.realtime.guard_ws import origin_allowed

if TYPE_CHECKING:
    from app.context import AppContext

Query = TypeVar("Query")


async def open_console_socket(
    ctx: AppContext,
    ws: WebSocket,
    permission: str,
    parse_query: Callable[[WebSocket], Query],
) -> tuple[Principal, Query] | None:
    """Accept a console's socket and say who it is and what it asked for; None when it was
    refused and closed (4403 origin or permission, 1008 bad query, 4401 bad token).
    `parse_query` raises ValueError with a message naming the parameter."""
    origin = ws.headers.get("origin")
    if not origin_allowed(origin, ctx.settings.ws_allowed_origins, ws.headers.get("host")):
        await ws.close(CloseCode.FORBIDDEN, "origin not allowed")
        return None
    await ws.accept()
    try:
        query = parse_query(ws)
    except ValueError as exc:
        error = {"type": "error", "code": "invalid_query", "message": str(exc)}
        await ws.send_text(json.dumps(error))
        await ws.close(CloseCode.INVALID_QUERY, "invalid query")
        return None
    try:
        principal = await authenticate_socket(ctx, ws)
    except WebSocketDisconnect:
        return None
    if principal is None:
        await ws.close(CloseCode.UNAUTHORIZED, "invalid, revoked or missing token")
        return None
    if permission not in principal.permissions:
        await ws.close(CloseCode.FORBIDDEN, f"token may not do this (needs {permission})")
        return None
    return principal, query


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
