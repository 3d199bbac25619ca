"""Liveness, readiness and metrics."""

from __future__ import annotations

from pathlib import Path

import httpx

from app.main import create_app
from tests.harness import Harness, serve, settings_for


async def test_healthz_is_open_and_ok(harness: Harness) -> None:
    response = await harness.client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_reports_database_and_migrations_at_head(harness: Harness) -> None:
    response = await harness.client.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json()["checks"] == {"database": "ok", "migrations": "ok"}


async def test_readyz_is_503_on_an_unmigrated_database(tmp_path: Path) -> None:
    settings = settings_for(f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")
    async with serve(create_app(settings), settings) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            response = await client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not_ready"
    assert body["checks"]["migrations"].startswith("at None")


async def test_metrics_expose_http_counters_to_a_scraper_key(harness: Harness) -> None:
    await harness.client.get("/healthz")
    scraper = await harness.api_key(["metrics:read"])
    response = await harness.client.get("/metrics", headers={"Authorization": f"Bearer {scraper}"})
    assert response.status_code == 200
    assert (
        'dispatch_http_requests_total{method="GET",route="/healthz",status="200"}' in response.text
    )
