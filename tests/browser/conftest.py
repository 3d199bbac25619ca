"""Browser tests: Playwright drives Debian's Chromium against a real server with the demo
city seeded in its own database. Screenshots land in DISPATCH_TEST_ARTIFACTS (default
var/test-artifacts/), never in git."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.demo.seed import seed_demo
from app.dispatch import roster
from tests.conftest import IN_CI, PG_URL
from tests.harness import Harness, fresh_database, start_harness

CHROMIUM = Path(os.environ.get("DISPATCH_TEST_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(os.environ.get("DISPATCH_TEST_ARTIFACTS", "var/test-artifacts"))
# Seeded demo positions age past freshness, so only the tests' own phones are available.
DEMO_POSITIONS_AGE_S = 600


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[object]:
    if not CHROMIUM.exists():
        message = f"browser tests need Chromium at {CHROMIUM} (apt-get install chromium)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
        chromium = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox"]
        )
        yield chromium
        await chromium.close()


@pytest.fixture(scope="module")
async def city(backend: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Harness]:
    """A server of its own with the Tianjin demo city (logins operator / demo-operator-pass)."""
    async with fresh_database(backend, PG_URL, tmp_path_factory.mktemp("city")) as url:
        async with start_harness(url, stream_heartbeat_s=1.0) as harness:
            await seed_demo(harness.ctx)
            await roster.rebuild(harness.ctx)  # as a restart after `seed-demo` would
            harness.clock.advance(DEMO_POSITIONS_AGE_S)
            yield harness


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
