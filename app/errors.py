"""One error family, rendered everywhere as {"error": {"code", "message", "details"}}."""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    """Base of every error a service raises on purpose; carries its HTTP status and code."""

    status_code = 400
    code = "bad_request"
    retry_after_s: int | None = None  # sent as Retry-After when set

    def __init__(self, message: str, *, details: Any = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        if code is not None:
            self.code = code


class BadRequest(AppError):
    pass


class Unauthorized(AppError):
    status_code = 401
    code = "unauthorized"


class Forbidden(AppError):
    status_code = 403
    code = "forbidden"


class NotFound(AppError):
    status_code = 404
    code = "not_found"


class Conflict(AppError):
    status_code = 409
    code = "conflict"


class InvalidTransition(Conflict):
    code = "invalid_transition"

    def __init__(self, action: str, kind: str, current: str) -> None:
        super().__init__(
            f"cannot {action} {kind} in status '{current}'",
            details={"current_status": current, "action": action},
        )


class Unprocessable(AppError):
    status_code = 422
    code = "validation_error"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}", details=[{"field": field, "message": message}])


class TooManyRequests(AppError):
    status_code = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after_s: int, details: Any = None) -> None:
        super().__init__(
            message, details=details if details is not None else {"retry_after_s": retry_after_s}
        )
        self.retry_after_s = retry_after_s


class DatabaseUnavailable(AppError):
    """The database is down, hung or locked by another process: try again later."""

    status_code = 503
    code = "database_unavailable"

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message, details={"retry_after_s": retry_after_s})
        self.retry_after_s = retry_after_s


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}}
