"""Names people type (stations, guards) reach the map as text, never as markup: Leaflet
reads a string tooltip as HTML."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from tests.browser.console_page import open_console
from tests.harness import Harness

pytestmark = pytest.mark.usefixtures("backend")

MARKUP = '<b id="injected">Heping</b><img src="/x" onerror="alert(1)">'


async def test_a_station_name_with_markup_is_shown_as_text(
    browser: Browser, city: Harness, artifacts: Path
) -> None:
    stations = (await city.get("/api/v1/stations", params={"limit": 1})).json()["items"]
    station = stations[0]
    renamed = await city.patch(f"/api/v1/stations/{station['id']}", {"name": MARKUP})
    assert renamed.status_code == 200, renamed.text
    async with open_console(browser, city, artifacts, "text") as console:
        await console.sign_in()
        label = console.page.locator(".precinct-label", has_text="Heping</b>")
        await expect(label).to_have_count(1)
        await expect(label).to_contain_text(MARKUP)
        assert await console.page.locator("#injected, .leaflet-tooltip img").count() == 0
