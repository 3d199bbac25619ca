"""/api/v1/companies"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from app.api.deps import Allow, CtxDep, ReadSessionDep, SessionDep
from app.api.openapi import conflict
from app.api.pagination import DEFAULT_LIMIT, Cursor, Limit
from app.auth.principal import Principal
from app.registry import service
from app.registry.schemas import CompanyCreate, CompanyOut, CompanyStatus, CompanyUpdate
from app.schemas import Page

router = APIRouter(prefix="/companies", tags=["registry"])
LICENCE_TAKEN = conflict("`already_exists`: another company has this licence_no")


@router.post("", status_code=201, response_model=CompanyOut, responses=LICENCE_TAKEN)
async def create_company(
    principal: Annotated[Principal, Depends(Allow("companies:write"))],
    body: CompanyCreate,
    session: SessionDep,
    ctx: CtxDep,
) -> object:
    return await service.create_company(session, ctx, principal, body)


@router.get("", response_model=Page[CompanyOut])
async def list_companies(
    principal: Annotated[Principal, Depends(Allow("registry:read"))],
    session: ReadSessionDep,
    status: CompanyStatus | None = None,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
) -> object:
    items, next_cursor = await service.list_companies(session, principal, status, cursor, limit)
    return {"items": items, "next_cursor": next_cursor}


@router.get("/{company_id}", response_model=CompanyOut)
async def get_company(
    principal: Annotated[Principal, Depends(Allow("registry:read"))],
    company_id: str,
    session: ReadSessionDep,
) -> object:
    return await service.get_company(session, principal, company_id)


@router.patch("/{company_id}", response_model=CompanyOut, responses=LICENCE_TAKEN)
async def update_company(
    principal: Annotated[Principal, Depends(Allow("companies:write"))],
    company_id: str,
    body: CompanyUpdate,
    session: SessionDep,
    ctx: CtxDep,
) -> object:
    return await service.update_company(session, ctx, principal, company_id, body)
