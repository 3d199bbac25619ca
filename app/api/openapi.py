"""The OpenAPI document declares every answer a route really gives, errors included.

FastAPI documents the success answer and a 422 in its own shape; the service answers its
errors as `{"error": {"code", "message", "details"}}` (app/api/errors.py) and with more
statuses than that. They are derived here from what each route is made of, so a new route
is documented right without a word in its decorator:

- an access rule (`Allow`) → 401 (no or bad token) and 403 (role or scope falls short);
- an access rule, a database session or the app context → 503 `database_unavailable`
  with `Retry-After`;
- a path parameter → 404 (no such object, or another tenant's);
- a request body → 400 (not JSON), 413 (over `DISPATCH_MAX_BODY_BYTES`) and 422;
- any parameter or body → 422 `validation_error`.

What the parts cannot tell (409 conflicts, the sign-in's 401 and 429) a route declares with
`responses=` on its decorator, usually one of the constants below; a declared error
status without a body schema gets the error schema and its headers here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts

from app.api.deps import Allow, _read_session, _write_session, get_ctx

ERROR_SCHEMA_NAME = "Error"
ERROR_SCHEMA: dict[str, Any] = {
    "title": ERROR_SCHEMA_NAME,
    "type": "object",
    "required": ["error"],
    "additionalProperties": False,
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "additionalProperties": False,
            "properties": {
                "code": {"type": "string", "description": "stable, machine-readable"},
                "message": {"type": "string", "description": "for people; names the field"},
                "details": {"description": "depends on the code; a list of fields for 422"},
            },
        }
    },
}

RETRY_AFTER = {
    "description": "seconds to wait before trying again",
    "required": True,
    "schema": {"type": "integer", "minimum": 0},
}
WWW_AUTHENTICATE = {"description": "`Bearer`", "required": True, "schema": {"type": "string"}}

DESCRIPTIONS = {
    400: "The body is not valid JSON (`invalid_json`).",
    401: "No bearer token, or one that is invalid, expired or revoked "
    "(`unauthorized`, `invalid_token`).",
    403: "The credential's role or scopes do not allow this (`forbidden`).",
    404: "No such object, or one this credential may not see (`not_found`).",
    409: "The request conflicts with the object's current state.",
    413: "The request body is over the service's limit (`payload_too_large`); "
    "refused before it is parsed or the credential is checked.",
    422: "A parameter or field is invalid (`validation_error`); `details` names each field.",
    429: "Too many requests (`rate_limited`); try again after `Retry-After` seconds.",
    503: "The database is unreachable, hung or locked (`database_unavailable`); "
    "try again after `Retry-After` seconds.",
}
HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": WWW_AUTHENTICATE},
    429: {"Retry-After": RETRY_AFTER},
    503: {"Retry-After": RETRY_AFTER},
}


def conflict(description: str) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route that can answer 409; `description` lists its codes."""
    return {409: {"description": description}}


def _dependants(dependant: Dependant) -> Iterator[Dependant]:
    """The route's dependant and every (sub-)dependency's, each with its own parameters."""
    yield dependant
    for sub in dependant.dependencies:
        yield from _dependants(sub)


def derived_errors(route: Any) -> set[int]:
    """The error statuses a route (a FastAPI route context) can answer, from its
    dependencies and parameters."""
    parts = list(_dependants(route.dependant))
    calls = [part.call for part in parts[1:]]
    statuses: set[int] = set()
    guarded = any(isinstance(call, Allow) for call in calls)
    if guarded:
        statuses |= {401, 403}
    # The app context holds the database: a route that takes it may find it down.
    if guarded or {_write_session, _read_session, get_ctx} & set(calls):
        statuses.add(503)
    if any(part.path_params for part in parts):
        statuses.add(404)
    if route.body_field is not None:
        statuses |= {413, 422}
        if not _is_form(route):
            statuses.add(400)
    if any(
        part.path_params or part.query_params or part.header_params or part.cookie_params
        for part in parts
    ):
        statuses.add(422)
    return statuses


def _is_form(route: Any) -> bool:
    body = route.body_field
    if body is None:
        return False
    info = body.field_info
    return type(info).__name__ in ("Form", "File")


def _error_response(status: int, declared: dict[str, Any] | None) -> dict[str, Any]:
    response = dict(declared or {})
    if not response.get("description") or response["description"] == "Validation Error":
        response["description"] = DESCRIPTIONS.get(status, "Error")
    content = response.get("content") or {}
    if "application/json" in content and status != 422:
        return response  # a body of the route's own (FastAPI's 422 is not what we send)
    response["content"] = {
        **content,
        "application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_SCHEMA_NAME}"}},
    }
    if status in HEADERS:
        response["headers"] = {**HEADERS[status], **response.get("headers", {})}
    return response


def document(app: FastAPI, build: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """FastAPI's document with each operation's error answers added (built once)."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    spec = build()
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas[ERROR_SCHEMA_NAME] = ERROR_SCHEMA
    # `app.routes` holds included routers unexpanded; their contexts carry the full path.
    for route in iter_route_contexts(app.routes):
        if not isinstance(route.original_route, APIRoute) or not route.include_in_schema:
            continue
        derived = derived_errors(route)
        for method in route.methods or ():
            operation = spec["paths"].get(route.path_format, {}).get(method.lower())
            if operation is None:
                continue
            responses = operation.setdefault("responses", {})
            declared = {int(code) for code in responses if code.isdigit()}
            for status in sorted(derived | {s for s in declared if s >= 400}):
                responses[str(status)] = _error_response(status, responses.get(str(status)))
            operation["responses"] = dict(sorted(responses.items()))
    # FastAPI's validation error schemas are referenced by nothing now.
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    app.openapi_schema = spec
    return spec


def install_openapi(app: FastAPI) -> None:
    """Serve the document with every route's error answers at /openapi.json."""
    build = app.openapi
    app.openapi = lambda: document(app, build)  # type: ignore[method-assign]
