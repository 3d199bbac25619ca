"""Test harness: every database test runs on SQLite and, when reachable, PostgreSQL.

One real uvicorn server per backend serves the app on 127.0.0.1 (ephemeral port) inside
the test event loop, with a ManualClock the tests move instead of sleeping. Tests keep out
of each other's way by working in their own area of the map (`area` fixture) and with
unique names, so the database is shared for the whole session. A test that starts a
server of its own gives it a database of its own (`own_database_url`): two servers on one
database would each run the background loops (timers, re-offers) on their own clock, and
the session server, its clock moved on by other tests, would expire the other's offers.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.harness import Harness, fresh_database, start_harness

PG_URL = os.environ.get("DISPATCH_TEST_POSTGRES_URL")
IN_CI = os.environ.get("CI", "").lower() == "true"
_backends_run: dict[str, int] = {"sqlite": 0, "postgresql": 0}


def pytest_report_header(config: pytest.Config) -> str:
    if PG_URL:
        return f"PostgreSQL tests: ON ({PG_URL.rsplit('@', 1)[-1]})"
    return "PostgreSQL tests: SKIPPED (set DISPATCH_TEST_POSTGRES_URL to run them)"


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "postgresql" and not PG_URL:
        if IN_CI:
            pytest.fail("CI=true but DISPATCH_TEST_POSTGRES_URL is not set: PostgreSQL must run")
        pytest.skip("PostgreSQL skipped: DISPATCH_TEST_POSTGRES_URL is not set")
    return str(request.param)


@pytest.fixture(autouse=True)
def _count_backend(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "backend" in request.fixturenames:
        _backends_run[request.getfixturevalue("backend")] += 1


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    sqlite_n, pg_n = _backends_run["sqlite"], _backends_run["postgresql"]
    if PG_URL:
        terminalreporter.write_line(f"database tests run: SQLite {sqlite_n}, PostgreSQL {pg_n}")
    else:
        terminalreporter.write_line(
            f"database tests run: SQLite {sqlite_n}; PostgreSQL SKIPPED "
            "(DISPATCH_TEST_POSTGRES_URL not set)"
        )


@pytest.fixture(scope="session")
async def database_url(
    backend: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    async with fresh_database(backend, PG_URL, tmp_path_factory.mktemp("db")) as url:
        yield url


@pytest.fixture
async def own_database_url(backend: str, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database for a test that starts its own server(s)."""
    async with fresh_database(backend, PG_URL, tmp_path) as url:
        yield url


@pytest.fixture(scope="session")
async def harness(database_url: str) -> AsyncIterator[Harness]:
    async with start_harness(database_url) as running:
        yield running


@pytest.fixture(autouse=True)
def _fresh_login_throttle(request: pytest.FixtureRequest) -> None:
    """Every test signs in from 127.0.0.1 on the shared server: each starts with no failed
    sign-ins counted, so one test's bad logins never throttle another test's logins."""
    if "harness" in request.fixturenames:
        request.getfixturevalue("harness").ctx.login_throttle.reset()


_area_counter = iter(range(1, 10_000))


@pytest.fixture
def area() -> tuple[float, float]:
    """A patch of map no other test uses: (lat, lon) of its centre."""
    n = next(_area_counter)
    return (round(-60 + (n // 60) * 1.0, 4), round(-170 + (n % 60) * 5.0, 4))


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:10]
