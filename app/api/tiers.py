"""/api/v1/tiers: the guard risk tiers, what each allows and forbids, and instruction templates."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from app.api.deps import Allow
from app.auth.principal import Principal
from app.dispatch.tiers import CATALOGUE, TIERS

router = APIRouter(tags=["tiers"])


class Localized(BaseModel):
    en: str
    zh: str


class TierOut(BaseModel):
    tier: str
    label: Localized
    allows: Localized
    forbids: Localized
    basis: Localized
    template: Localized


class TiersOut(BaseModel):
    items: list[TierOut]
    next_cursor: None = None


@router.get("/tiers", response_model=TiersOut)
async def list_tiers(
    principal: Annotated[
        Principal,
        Depends(Allow("incidents:read", "incidents:write", "police:act", "registry:read")),
    ],
) -> object:
    """Every tier, least to most intrusive, with the law it rests on, in English and Chinese.

    Reference data for consoles and police systems (guards get their incident's tiers and a
    safety note in each offer and assignment frame)."""
    return {"items": [asdict(CATALOGUE[tier]) for tier in TIERS], "next_cursor": None}
