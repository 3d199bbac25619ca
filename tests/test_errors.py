"""One error shape everywhere, including for unknown routes and crashes."""

from __future__ import annotations

import httpx
from fastapi import APIRouter

from app.main import create_app
from tests.harness import Harness, settings_for


def assert_error(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]


async def test_unknown_route_is_404_in_error_shape(harness: Harness) -> None:
    error = assert_error(await harness.client.get("/api/v1/nope"), 404, "not_found")
    assert "/api/v1/nope" in error["message"]


async def test_wrong_method_is_405_in_error_shape(harness: Harness) -> None:
    assert_error(await harness.client.put("/healthz"), 405, "method_not_allowed")


async def test_malformed_json_is_400(harness: Harness) -> None:
    response = await harness.client.post(
        "/api/v1/incidents",
        content=b'{"category": "theft",',
        headers={**await harness.headers("operator"), "Content-Type": "application/json"},
    )
    assert_error(response, 400, "invalid_json")


async def test_unhandled_exception_is_500_in_error_shape_with_request_id(database_url: str) -> None:
    app = create_app(settings_for(database_url))
    boom = APIRouter()

    @boom.get("/boom")
    async def explode() -> None:
        raise RuntimeError("kaboom")

    app.include_router(boom)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.get("/boom", headers={"X-Request-ID": "req-42"})
    error = assert_error(response, 500, "internal_error")
    assert error["details"] == {"request_id": "req-42"}
    assert "kaboom" not in response.text
