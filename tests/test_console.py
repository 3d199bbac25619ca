"""The console page, its assets and the offline API docs, served by the app itself."""

from __future__ import annotations

import json
import re

import pytest

from tests.harness import Harness

pytestmark = pytest.mark.usefixtures("backend")


async def test_root_leads_to_the_console(harness: Harness) -> None:
    response = await harness.client.get("/", follow_redirects=False)
    assert response.status_code == 307
    assert response.headers["location"] == "/console"


async def test_console_page_forbids_every_other_origin(harness: Harness) -> None:
    response = await harness.client.get("/console")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    policy = dict(
        part.strip().split(" ", 1)
        for part in response.headers["content-security-policy"].split(";")
    )
    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == "'self'"
    assert policy["connect-src"] == "'self'"
    assert policy["img-src"] == "'self' data:"
    assert policy["frame-ancestors"] == "'none'"
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_console_page_carries_its_settings_and_only_local_assets(harness: Harness) -> None:
    html = (await harness.client.get("/console")).text
    config = json.loads(re.search(r'id="console-config">(.*?)</script>', html, re.S).group(1))
    assert config["timezone"] == "Asia/Shanghai"
    assert config["tile_url"] is None
    for url in re.findall(r'(?:src|href)="([^"]+)"', html):
        assert url.startswith("/console/") or url.startswith("data:"), url
        if url.startswith("/console/"):
            assert (await harness.client.get(url)).status_code == 200, url


async def test_console_assets_and_leaflet_are_served(harness: Harness) -> None:
    for path in (
        "/console/static/main.js",
        "/console/static/console.css",
        "/console/leaflet/leaflet.js",
        "/console/leaflet/leaflet.css",
    ):
        response = await harness.client.get(path)
        assert response.status_code == 200, path
    assert (await harness.client.get("/console/static/../../settings.py")).status_code == 404


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
async def test_api_docs_load_nothing_from_outside(harness: Harness, path: str) -> None:
    html = (await harness.client.get(path)).text
    urls = re.findall(r'(?:src|href)="([^"]+)"', html) + re.findall(r"url: '([^']+)'", html)
    assert urls
    for url in urls:
        assert url.startswith("/"), f"{path} loads {url}"
        assert (await harness.client.get(url)).status_code == 200, url


async def test_me_says_who_the_token_is_and_what_it_may_do(harness: Harness) -> None:
    response = await harness.get("/api/v1/auth/me", role="supervisor")
    assert response.status_code == 200
    me = response.json()
    assert me["role"] == "supervisor"
    assert me["kind"] == "user"
    assert "incidents:read" in me["permissions"]
    assert "incidents:operate" not in me["permissions"]


async def test_events_stream_accepts_the_consoles_own_origin_only(harness: Harness) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus

    token = await harness.token("operator")
    host = harness.base_url.removeprefix("http://")
    async with connect(f"{harness.ws_url}/ws/events", origin=f"http://{host}") as ws:
        await ws.send(json.dumps({"type": "hello", "token": token}))
        assert json.loads(await ws.recv())["type"] == "stream.start"
    with pytest.raises(InvalidStatus) as refused:
        async with connect(f"{harness.ws_url}/ws/events", origin="http://evil.example"):
            pass
    assert refused.value.response.status_code == 403
