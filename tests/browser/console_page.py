"""The console as a test drives it: one browser context, every request and error recorded."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, ConsoleMessage, Page, expect

from tests.harness import Harness

TIMEOUT_MS = 10_000
EXPECTED_REFUSAL = re.compile(r"Failed to load resource: .* status of 4(09|22)")


class ConsolePage:
    def __init__(self, page: Page, harness: Harness, artifacts: Path, name: str) -> None:
        self.page = page
        self.harness = harness
        self.artifacts = artifacts
        self.name = name
        self.requests: list[str] = []
        self.errors: list[str] = []
        page.on("request", lambda request: self.requests.append(request.url))
        page.on("websocket", lambda socket: self.requests.append(socket.url))
        page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))
        page.on("console", self._console_message)
        page.on("dialog", lambda dialog: dialog.accept())  # confirm() of escalate/cancel

    def _console_message(self, message: ConsoleMessage) -> None:
        # A 4xx the page asked for and shows to the operator (a validation error) is logged
        # by Chromium too; anything else at error level (a CSP violation, a script error) fails.
        if message.type == "error" and not EXPECTED_REFUSAL.search(message.text):
            self.errors.append(f"console: {message.text}")

    async def sign_in(
        self, username: str = "operator", password: str = "demo-operator-pass", *, zh: bool = False
    ) -> None:
        await self.page.goto(f"{self.harness.base_url}/console")
        await self.page.get_by_label("用户名" if zh else "Username").fill(username)
        await self.page.get_by_label("密码" if zh else "Password").fill(password)
        await self.page.get_by_role("button", name="登录" if zh else "Sign in").click()
        await expect(self.page.locator("#live")).to_have_attribute("data-state", "on")

    def region(self, name: str) -> Any:
        return self.page.get_by_role("region", name=name)

    async def map_call(self, script: str, arg: Any = None) -> Any:
        """Evaluate `script` as (map, arg) => … against the console's Leaflet map."""
        return await self.page.evaluate(
            f"([arg]) => (({script}))(window.dispatchConsole.map, arg)", [arg]
        )

    async def click_map_at(self, lat: float, lon: float) -> None:
        await self.map_call("(m, p) => { m.map.setView(p, 16, {animate: false}); }", [lat, lon])
        point = await self.map_call(
            "(m, p) => { const xy = m.map.latLngToContainerPoint(p); return [xy.x, xy.y]; }",
            [lat, lon],
        )
        await self.page.locator("#map").click(position={"x": point[0], "y": point[1]})

    async def screenshot(self, label: str) -> Path:
        path = self.artifacts / f"{self.name}-{label}.png"
        await self.page.screenshot(path=str(path))
        return path

    def foreign_requests(self) -> list[str]:
        own = self.harness.base_url
        ws_own = self.harness.ws_url
        return [
            url
            for url in self.requests
            if not (url.startswith(own) or url.startswith(ws_own) or url.startswith("data:"))
        ]


@contextlib.asynccontextmanager
async def open_console(
    browser: Browser,
    harness: Harness,
    artifacts: Path,
    name: str,
    *,
    locale: str = "en-US",
    viewport: tuple[int, int] = (1366, 768),
    fake_clock: bool = False,
) -> AsyncIterator[ConsolePage]:
    context = await browser.new_context(
        locale=locale, viewport={"width": viewport[0], "height": viewport[1]}
    )
    if fake_clock:
        await context.clock.install()  # time flows, and a test may jump it
    context.set_default_timeout(TIMEOUT_MS)
    page = await context.new_page()
    console = ConsolePage(page, harness, artifacts, name)
    try:
        yield console
        assert console.foreign_requests() == [], "the console reached outside its origin"
        assert console.errors == [], console.errors
    finally:
        await context.close()
