"""Exception handlers: every error leaves as {"error": {"code", "message", "details"}}."""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.api.headers import API_POLICY, security_headers
from app.audit.log import refused
from app.db import is_unavailable
from app.errors import AppError, error_body
from app.observability import request_id_var

log = logging.getLogger("app.errors")

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    return ".".join(parts) or "body"


def _validation_details(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"field": field_name(e.get("loc", ())), "message": e.get("msg", ""), "type": e.get("type")}
        for e in errors
    ]


async def _app_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    if exc.status_code == 403:
        refused(request, exc.code, exc.message)
    headers: dict[str, str] | None = None
    if exc.status_code == 401:
        headers = {"WWW-Authenticate": "Bearer"}
    elif exc.retry_after_s is not None:  # 429, 503 database_unavailable
        headers = {"Retry-After": str(exc.retry_after_s)}
    return JSONResponse(
        error_body(exc.code, exc.message, exc.details), status_code=exc.status_code, headers=headers
    )


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = _validation_details(list(exc.errors()))
    # An unknown field is usually a typo and the clearest thing to name first.
    details.sort(key=lambda d: d["type"] != "extra_forbidden")
    if any(d["type"] == "json_invalid" for d in details):
        return JSONResponse(error_body("invalid_json", "request body is not valid JSON"), 400)
    first = details[0] if details else {"field": "body", "message": "invalid"}
    message = f"{first['field']}: {first['message']}"
    if len(details) > 1:
        message += f" (and {len(details) - 1} more)"
    return JSONResponse(error_body("validation_error", message, details), status_code=422)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    if exc.status_code == 404 and exc.detail == "Not Found":
        message = f"no route for {request.method} {request.url.path}"
    else:
        message = str(exc.detail)
    return JSONResponse(
        error_body(code, message),
        status_code=exc.status_code,
        headers=getattr(exc, "headers", None),
    )


async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
    request_id = request_id_var.get() or getattr(request.state, "request_id", None)
    log.error(
        "unhandled error on %s %s",
        request.method,
        request.url.path,
        exc_info=exc,
        extra={"request_id": request_id},
    )
    # Starlette answers a 500 outside every middleware: its headers are set here.
    headers = {**security_headers(request.scope), "Content-Security-Policy": API_POLICY}
    if request_id:
        headers["X-Request-ID"] = request_id
    return JSONResponse(
        error_body("internal_error", "internal error", {"request_id": request_id}),
        status_code=500,
        headers=headers,
    )


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    """A database that is down, hung or locked is a 503 the client may retry; any other
    driver error is a bug (500)."""
    if _holds_nul(exc):
        # A path or query parameter with NUL (bodies and frames refuse it when validated).
        return JSONResponse(
            error_body("validation_error", "text must not contain the NUL character (U+0000)"),
            status_code=422,
        )
    if not is_unavailable(exc):
        return await _unhandled(request, exc)
    log.warning(
        "database unavailable on %s %s: %s: %s",
        request.method,
        request.url.path,
        type(exc).__name__,
        exc,
        extra={"request_id": request_id_var.get()},
    )
    unavailable = request.app.state.ctx.db.unavailable("unreachable, hung or locked")
    return await _app_error(request, unavailable)


def _holds_nul(error: BaseException) -> bool:
    """PostgreSQL refused a text value holding NUL (SQLSTATE 22021)."""
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if getattr(cause, "sqlstate", None) == "22021":
            return True
        cause = cause.__cause__ or getattr(cause, "orig", None)
    return False


# Driver errors arrive wrapped (DBAPIError), raw (asyncpg's connect, a client-side
# timeout is an OSError), or as the pool giving up (sqlalchemy TimeoutError).
_DATABASE_ERRORS: tuple[type[Exception], ...] = (
    sa_exc.DBAPIError,
    sa_exc.TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    sqlite3.Error,
    OSError,
)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    for error in _DATABASE_ERRORS:
        app.add_exception_handler(error, _database_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unhandled)
