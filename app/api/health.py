"""/healthz (the process is up), /readyz (database reachable, schema at head), /metrics
(Prometheus, for a credential with `metrics:read`)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from sqlalchemy import text

from app.api.deps import Allow, CtxDep
from app.auth.principal import Principal
from app.migrate import head_revision

router = APIRouter(tags=["health"])


class Readiness(BaseModel):
    status: Literal["ready", "not_ready"]
    checks: dict[str, str]


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "database unreachable or not migrated"}},
)
async def readyz(ctx: CtxDep) -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        async with ctx.db.transaction(readonly=True) as session:
            await session.execute(text("SELECT 1"))
            checks["database"] = "ok"
            try:
                current = await session.scalar(text("SELECT version_num FROM alembic_version"))
            except Exception:
                current = None
    except Exception as exc:
        checks["database"] = f"unreachable: {type(exc).__name__}"
        current = None
    head = head_revision()
    if checks["database"] == "ok":
        checks["migrations"] = "ok" if current == head else f"at {current}, head is {head}"
    ready = all(value == "ok" for value in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not_ready", "checks": checks},
        status_code=200 if ready else 503,
    )


@router.get("/metrics", include_in_schema=False)
async def metrics(
    principal: Annotated[Principal, Depends(Allow("metrics:read"))], ctx: CtxDep
) -> Response:
    """Prometheus text; the scraper sends `Authorization: Bearer <key with metrics:read>`."""
    return Response(generate_latest(ctx.metrics.registry), media_type=CONTENT_TYPE_LATEST)
