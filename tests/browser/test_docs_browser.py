"""The API docs render in a real browser under their Content-Security-Policy, offline."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.async_api import Browser

from tests.harness import Harness

pytestmark = pytest.mark.usefixtures("backend")


@pytest.mark.parametrize(
    ("path", "rendered"),
    [
        ("/docs", ".swagger-ui .opblock-tag"),  # Swagger UI listed the operations
        ("/redoc", "[data-section-id]"),  # ReDoc did
    ],
)
async def test_the_docs_render_with_no_policy_violation(
    browser: Browser, harness: Harness, artifacts: Path, path: str, rendered: str
) -> None:
    context = await browser.new_context(viewport={"width": 1366, "height": 768})
    page = await context.new_page()
    problems: list[str] = []
    foreign: set[str] = set()
    blocked: set[str] = set()
    page.on(
        "console",
        lambda message: problems.append(message.text) if message.type == "error" else None,
    )
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on(
        "request",
        lambda request: (
            foreign.add(request.url)
            if not request.url.startswith((harness.base_url, "data:", "blob:"))
            else None
        ),
    )
    page.on(
        "requestfailed",
        lambda request: blocked.add(request.url) if request.failure == "csp" else None,
    )
    try:
        response = await page.goto(harness.base_url + path)
        assert response is not None and response.ok
        await page.wait_for_selector(rendered, timeout=15_000)
        await page.screenshot(path=str(artifacts / f"docs{path.replace('/', '-')}.png"))
    finally:
        await context.close()
    # A refused script, style or worker of the page's own would show up here. What the
    # policy refuses from elsewhere (ReDoc's footer logo from its CDN) is the policy working:
    # nothing leaves the origin.
    refused_elsewhere = [
        p for p in problems if (url := _refused_url(p)) and not url.startswith(harness.base_url)
    ]
    assert [p for p in problems if p not in refused_elsewhere] == []
    assert foreign <= blocked, foreign - blocked


def _refused_url(message: str) -> str | None:
    found = re.match(r"Loading the \w+ '([^']+)' violates the following Content Security", message)
    return found.group(1) if found else None
