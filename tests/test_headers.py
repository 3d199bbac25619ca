"""Security headers on every response: API, errors, docs, console; HSTS over TLS only."""

from __future__ import annotations

import base64
import hashlib
import re

import httpx
import pytest
from fastapi import APIRouter

from app.api.headers import API_POLICY, HSTS, PERMISSIONS_POLICY
from app.console.routes import content_security_policy
from app.main import create_app
from tests.harness import Harness, settings_for, start_harness

pytestmark = pytest.mark.usefixtures("backend")


def assert_secured(response: httpx.Response, policy: str | None = API_POLICY) -> None:
    where = f"{response.request.method} {response.request.url.path} ({response.status_code})"
    assert response.headers.get("X-Content-Type-Options") == "nosniff", where
    assert response.headers.get("Referrer-Policy") == "no-referrer", where
    assert response.headers.get("Permissions-Policy") == PERMISSIONS_POLICY, where
    assert "Strict-Transport-Security" not in response.headers, where  # plain http
    if policy is not None:
        assert response.headers.get("Content-Security-Policy") == policy, where


async def test_api_answers_and_errors_carry_the_headers(harness: Harness) -> None:
    admin = await harness.headers("admin")
    client = harness.client
    for response in (
        await client.get("/api/v1/incidents", headers=admin),  # 200
        await client.get("/healthz"),
        await client.get("/openapi.json"),
        await client.get("/api/v1/incidents"),  # 401
        await client.put("/healthz"),  # 405
        await client.get("/api/v1/incidents/inc_missing", headers=admin),  # 404
        await client.post("/api/v1/incidents", json={}, headers=admin),  # 422
        await client.get("/no/such/route"),  # 404 outside the API
        await client.post("/api/v1/incidents", content=b"x" * (1 << 20)),  # 413
        await client.get("/console/static/main.js"),  # a static file
    ):
        assert_secured(response)


async def test_an_unhandled_error_carries_the_headers(database_url: str) -> None:
    """Starlette answers a 500 outside every middleware; the handler sets them itself."""
    app = create_app(settings_for(database_url))
    boom = APIRouter()

    @boom.get("/boom")
    async def explode() -> None:
        raise RuntimeError("kaboom")

    app.include_router(boom)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.get("/boom")
    assert response.status_code == 500
    assert_secured(response)


async def test_the_console_keeps_its_own_stricter_policy(harness: Harness) -> None:
    response = await harness.client.get("/console")
    assert response.status_code == 200
    assert_secured(response, content_security_policy(harness.ctx.settings))
    assert "script-src 'self';" in response.headers["Content-Security-Policy"]


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/docs/oauth2-redirect"])
async def test_the_docs_pages_allow_exactly_their_own_inline_scripts(
    harness: Harness, path: str
) -> None:
    response = await harness.client.get(path)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert_secured(response, policy=None)
    policy = response.headers["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    inline = re.findall(r"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", response.text, re.DOTALL)
    hashes = {
        f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'" for s in inline
    }
    allowed = set(directives["script-src"].split())
    assert allowed == {"'self'", *hashes}
    assert "'unsafe-inline'" not in allowed and "'unsafe-eval'" not in allowed


async def test_hsts_only_over_tls_as_a_trusted_proxy_says(
    harness: Harness, own_database_url: str
) -> None:
    # Not a trusted proxy (the session server trusts none): the header proves nothing.
    spoofed = await harness.client.get("/healthz", headers={"X-Forwarded-Proto": "https"})
    assert "Strict-Transport-Security" not in spoofed.headers

    async with start_harness(own_database_url, trusted_proxies="127.0.0.1") as behind_proxy:
        plain = await behind_proxy.client.get("/healthz", headers={"X-Forwarded-Proto": "http"})
        assert "Strict-Transport-Security" not in plain.headers
        for path in ("/healthz", "/api/v1/incidents", "/console"):
            response = await behind_proxy.client.get(path, headers={"X-Forwarded-Proto": "https"})
            assert response.headers.get("Strict-Transport-Security") == HSTS, path
