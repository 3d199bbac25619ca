"""`/console`: the page, its static files and packaged Leaflet, behind a strict CSP."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

import xstatic.pkg.leaflet as leaflet
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from app.settings import Settings

STATIC = Path(__file__).parent / "static"
router = APIRouter(include_in_schema=False)


def content_security_policy(settings: Settings) -> str:
    """Everything from this origin only; map tiles from their one configured origin."""
    images = ["'self'", "data:"]
    if settings.map_tile_url and settings.map_tile_url.startswith("http"):
        parts = urlsplit(settings.map_tile_url.replace("{s}", "a"))
        images.append(f"{parts.scheme}://{parts.netloc}")
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            f"img-src {' '.join(images)}",
            "connect-src 'self'",
            "font-src 'self'",
            "manifest-src 'self'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


def console_config(settings: Settings) -> dict[str, object]:
    """What the page needs to know before it signs in."""
    return {
        "tile_url": settings.map_tile_url,
        "tile_attribution": settings.map_tile_attribution,
        "timezone": settings.timezone,
        "freshness_s": settings.position_freshness_s,
    }


def render_page(settings: Settings) -> str:
    # The config rides in a JSON data block: not executable, so the CSP stays 'self'.
    config = json.dumps(console_config(settings)).replace("<", "\\u003c")
    return (STATIC / "index.html").read_text(encoding="utf-8").replace("{{CONFIG}}", config)


@router.get("/")
async def root() -> RedirectResponse:
    return RedirectResponse("/console", status_code=307)


@router.get("/console")
async def console(request: Request) -> HTMLResponse:
    settings: Settings = request.app.state.ctx.settings
    return HTMLResponse(
        render_page(settings),
        headers={
            "Content-Security-Policy": content_security_policy(settings),
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        },
    )


def install_console(app: FastAPI) -> None:
    """Mount the page and its assets."""
    app.include_router(router)
    app.mount("/console/static", StaticFiles(directory=STATIC), name="console-static")
    app.mount("/console/leaflet", StaticFiles(directory=leaflet.BASE_DIR), name="leaflet")
