"""Authentication and the access matrix, generated from the app's own routes."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.routing import APIRoute, iter_route_contexts

from app.api.deps import Allow
from app.auth.permissions import INTEGRATION_SCOPES, ROLE_PERMISSIONS
from tests.harness import Harness
from tests.test_errors import assert_error

pytestmark = pytest.mark.usefixtures("backend")

# Pages and public endpoints; the console page holds no data, its API calls are checked.
PUBLIC = {
    "/healthz",
    "/readyz",
    "/api/v1/auth/token",
    "/",
    "/console",
    "/docs",
    "/docs/oauth2-redirect",
    "/redoc",
}


def http_routes(harness: Harness) -> list[Any]:
    """Every route the app serves over HTTP (FastAPI route contexts: full path, methods,
    dependant). `app.routes` alone holds included routers unexpanded, and a loop over it
    finds none of the API."""
    return [
        route
        for route in iter_route_contexts(harness.app.routes)
        if isinstance(route.original_route, APIRoute)
    ]


def rule_of(route: Any) -> frozenset[str] | None:
    for dependency in route.dependant.dependencies:
        if isinstance(dependency.call, Allow):
            return dependency.call.permissions
    return None


def api_routes(harness: Harness) -> list[tuple[str, str, frozenset[str] | None]]:
    routes = []
    for route in http_routes(harness):
        if route.path in PUBLIC:
            continue
        for method in sorted(route.methods - {"HEAD"}):
            routes.append((method, re.sub(r"\{[^}]+\}", "x_missing", route.path), rule_of(route)))
    return routes


async def test_every_route_declares_an_access_rule(harness: Harness) -> None:
    assert len(api_routes(harness)) >= 40  # the API's routes, not just the pages
    missing = [f"{m} {p}" for m, p, rule in api_routes(harness) if rule is None]
    assert missing == [], f"routes without an Allow(...) rule: {missing}"


async def test_every_route_refuses_a_missing_or_bad_token(harness: Harness) -> None:
    for method, path, _ in api_routes(harness):
        for headers in (
            {},
            {"Authorization": "Bearer not-a-token"},
            {"Authorization": "Basic Zm9vOmJhcg=="},
        ):
            response = await harness.client.request(method, path, json={}, headers=headers)
            assert response.status_code == 401, f"{method} {path} {headers}: {response.status_code}"
            assert response.json()["error"]["code"] in ("unauthorized", "invalid_token")
            assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_every_route_enforces_its_rule_for_each_role(harness: Harness) -> None:
    company = await harness.make_company()
    guard = await harness.make_guard(company["id"])
    device = (await harness.post(f"/api/v1/guards/{guard['id']}/tokens")).json()["token"]
    callers = {
        role: await harness.token(
            role, **({"company_id": company["id"]} if role == "company_manager" else {})
        )
        for role in ("admin", "operator", "supervisor", "company_manager")
    }
    callers["integration"] = await harness.api_key(sorted(INTEGRATION_SCOPES))
    callers["guard"] = device
    narrow_key = await harness.api_key(["incidents:read"])
    granted = {**ROLE_PERMISSIONS, "integration": INTEGRATION_SCOPES}

    failures = []
    for method, path, rule in api_routes(harness):
        assert rule is not None
        for who, token in [*callers.items(), ("narrow_key", narrow_key)]:
            held = granted.get(who, frozenset({"incidents:read"}))
            response = await harness.client.request(
                method, path, json={}, headers={"Authorization": f"Bearer {token}"}
            )
            allowed = bool(rule & held)
            if allowed and response.status_code in (401, 403):
                failures.append(f"{who} refused {method} {path}: {response.status_code}")
            if not allowed and response.status_code != 403:
                failures.append(f"{who} not refused {method} {path}: {response.status_code}")
    assert failures == []


async def test_token_endpoint_issues_a_bearer_token(harness: Harness) -> None:
    username = await harness.user("operator")
    response = await harness.client.post(
        "/api/v1/auth/token", data={"username": username, "password": "correct-horse-battery"}
    )
    assert response.status_code == 200
    body = response.json()
    assert (
        body["token_type"] == "bearer"
        and body["expires_in"] == harness.ctx.settings.access_token_ttl_s
    )
    me = await harness.client.get(
        "/api/v1/incidents", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert me.status_code == 200


@pytest.mark.parametrize(
    "form",
    [{"username": "nobody", "password": "whatever-pass"}, {"username": "", "password": ""}, {}],
)
async def test_token_endpoint_rejects_bad_credentials(
    harness: Harness, form: dict[str, str]
) -> None:
    response = await harness.client.post("/api/v1/auth/token", data=form)
    assert response.status_code in (401, 422)
    assert "error" in response.json()


async def test_wrong_password_is_401_and_repeated_failures_are_throttled(harness: Harness) -> None:
    username = await harness.user("operator")
    codes = []
    for _ in range(12):
        response = await harness.client.post(
            "/api/v1/auth/token", data={"username": username, "password": "wrong-password"}
        )
        codes.append(response.status_code)
    # The account locks after 5 (answering like a wrong password); the name's throttle
    # answers 429 after 10 (tests/test_sign_in.py covers both in depth).
    assert codes[:10] == [401] * 10
    assert codes[10:] == [429, 429]
    assert_error(response, 429, "rate_limited")
    assert 1 <= int(response.headers["Retry-After"]) <= harness.ctx.settings.login_throttle_window_s


async def test_revoked_api_key_and_guard_token_stop_working(harness: Harness) -> None:
    admin = await harness.headers("admin")
    created = await harness.client.post(
        "/api/v1/api-keys", json={"name": "cad", "scopes": ["incidents:read"]}, headers=admin
    )
    assert created.status_code == 201
    key = created.json()
    assert key["key"].startswith(key["id"] + ".")
    use = {"Authorization": f"Bearer {key['key']}"}
    assert (await harness.client.get("/api/v1/incidents", headers=use)).status_code == 200
    assert (
        await harness.client.delete(f"/api/v1/api-keys/{key['id']}", headers=admin)
    ).status_code == 204
    assert_error(await harness.client.get("/api/v1/incidents", headers=use), 401, "invalid_token")

    guard = await harness.make_guard()
    token = (await harness.post(f"/api/v1/guards/{guard['id']}/tokens")).json()
    revoke = await harness.client.delete(
        f"/api/v1/guards/{guard['id']}/tokens/{token['token_id']}", headers=admin
    )
    assert revoke.status_code == 204


async def test_api_key_with_unknown_scope_is_422(harness: Harness) -> None:
    response = await harness.post("/api/v1/api-keys", {"name": "x", "scopes": ["everything"]})
    error = assert_error(response, 422, "validation_error")
    assert error["message"].startswith("scopes:")


async def test_tampered_secret_is_refused(harness: Harness) -> None:
    key = await harness.api_key(["incidents:read"])
    tampered = key[:-2] + ("AA" if not key.endswith("AA") else "BB")
    response = await harness.client.get(
        "/api/v1/incidents", headers={"Authorization": f"Bearer {tampered}"}
    )
    assert_error(response, 401, "invalid_token")


async def test_deactivated_user_token_stops_working(harness: Harness) -> None:
    from sqlalchemy import update

    from app.models import User

    username = await harness.user("operator")
    token = await harness.login(username)
    async with harness.ctx.db.transaction() as session:
        await session.execute(update(User).where(User.username == username).values(active=False))
    response = await harness.client.get(
        "/api/v1/incidents", headers={"Authorization": f"Bearer {token}"}
    )
    assert_error(response, 401, "invalid_token")
