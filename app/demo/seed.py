"""`python -m app seed-demo`: the Tianjin demo city, created through the registry services."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.principal import SYSTEM
from app.auth.service import create_api_key, create_user
from app.context import AppContext
from app.demo import tianjin
from app.models import GuardPresence, SecurityCompany
from app.registry import schemas
from app.registry.service import (
    create_company,
    create_guard,
    create_station,
    create_unit,
    issue_guard_token,
)
from app.schemas import Location
from app.settings import Settings

# (username, password, role): demo console logins, printed on every run.
USERS = (
    ("admin", "demo-admin-pass", "admin"),
    ("operator", "demo-operator-pass", "operator"),
    ("supervisor", "demo-supervisor-pass", "supervisor"),
)
API_KEY_NAME = "demo-cad"
API_KEY_SCOPES = [
    "incidents:read",
    "incidents:write",
    "police:act",
    "units:write",
    "events:read",
    "webhooks:manage",
]
TOKEN_GUARDS = 3
POSITION_ACCURACY_M = 10.0


@dataclass
class Seeded:
    """What one seeding run created; the secrets in it are shown once."""

    stations: int = 0
    units: int = 0
    companies: int = 0
    guards: int = 0
    api_key: str = ""
    guard_tokens: list[tuple[str, str, str]] = field(default_factory=list)  # id, name, token


async def seed_demo(ctx: AppContext) -> None:
    """Seed the demo city once, in one transaction; refuse in production."""
    if ctx.settings.env == "production":
        print("refusing to seed demo data: DISPATCH_ENV is 'production'")
        return
    async with ctx.db.transaction() as session:
        seeded = None if await _already_seeded(session, ctx) else await _seed(session, ctx)
    if seeded is None:
        print("demo city already seeded; nothing to do")
        _print_logins(ctx.settings)
        return
    _print_summary(seeded, ctx.settings)


async def _already_seeded(session: AsyncSession, ctx: AppContext) -> bool:
    """The demo is there when its first company's licence number is."""
    licence_no = tianjin.companies(ctx.clock.now().date())[0].licence_no
    found = await session.scalar(
        select(SecurityCompany.id).where(SecurityCompany.licence_no == licence_no)
    )
    return found is not None


async def _seed(session: AsyncSession, ctx: AppContext) -> Seeded:
    seeded = Seeded()
    await _seed_precincts(session, ctx, seeded)
    company_ids = await _seed_companies(session, ctx, seeded)
    guard_ids = await _seed_guards(session, ctx, company_ids, seeded)
    for username, password, role in USERS:
        await create_user(session, ctx, SYSTEM, username=username, password=password, role=role)
    _, seeded.api_key = await create_api_key(
        session, ctx, SYSTEM, name=API_KEY_NAME, scopes=API_KEY_SCOPES
    )
    for guard_id, name in guard_ids[:TOKEN_GUARDS]:
        _, token = await issue_guard_token(session, ctx, SYSTEM, guard_id)
        seeded.guard_tokens.append((guard_id, name, token))
    return seeded


async def _seed_precincts(session: AsyncSession, ctx: AppContext, seeded: Seeded) -> None:
    """Stations with their jurisdictions (indexed after commit) and their units."""
    for precinct in tianjin.PRECINCTS:
        station = await create_station(
            session,
            ctx,
            SYSTEM,
            schemas.StationCreate(
                name=precinct.name,
                jurisdiction=precinct.jurisdiction(),
                contact_phone=precinct.contact_phone,
            ),
        )
        seeded.stations += 1
        for unit in precinct.units:
            body = schemas.UnitCreate(
                call_sign=unit.call_sign,
                station_id=station.id,
                kind=unit.kind,
                location=Location(lat=unit.lat, lon=unit.lon),
            )
            await create_unit(session, ctx, SYSTEM, body)
            seeded.units += 1


async def _seed_companies(session: AsyncSession, ctx: AppContext, seeded: Seeded) -> list[str]:
    ids = []
    for company in tianjin.companies(ctx.clock.now().date()):
        body = schemas.CompanyCreate(
            name=company.name,
            licence_no=company.licence_no,
            licence_expires_on=company.licence_expires_on,
        )
        ids.append((await create_company(session, ctx, SYSTEM, body)).id)
        seeded.companies += 1
    return ids


async def _seed_guards(
    session: AsyncSession, ctx: AppContext, company_ids: list[str], seeded: Seeded
) -> list[tuple[str, str]]:
    """Every guard, on duty at their demo position; returns (id, name) in seed order."""
    now = ctx.clock.now()
    created = []
    for spec in tianjin.guards(now.date()):
        body = schemas.GuardCreate(
            company_id=company_ids[spec.company],
            name=spec.name,
            badge_no=spec.badge_no,
            phone=spec.phone,
            skills=list(spec.skills),
            certificate_expires_on=spec.certificate_expires_on,
        )
        guard = await create_guard(session, ctx, SYSTEM, body)
        session.add(_presence(guard.id, spec, now))
        created.append((guard.id, guard.name))
        seeded.guards += 1
    await session.flush()
    return created


def _presence(guard_id: str, spec: tianjin.GuardSeed, now: dt.datetime) -> GuardPresence:
    """On duty, freshly located (no presence service exists yet, so a raw row)."""
    return GuardPresence(
        guard_id=guard_id,
        on_duty=True,
        lat=spec.lat,
        lon=spec.lon,
        accuracy_m=POSITION_ACCURACY_M,
        located_at=now,
        seen_at=now,
    )


def base_url(settings: Settings) -> str:
    """Where a local client reaches `serve` (a wildcard host is reached on loopback)."""
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    return f"http://{host}:{settings.port}"


def _print_logins(settings: Settings) -> None:
    print("console users:")
    for username, password, role in USERS:
        print(f"  {username:<11} {password:<22} ({role})")
    print(
        "get a token: curl -d username=operator -d password=demo-operator-pass "
        f"{base_url(settings)}/api/v1/auth/token"
    )
    print("see guards take incidents: make demo (or python -m app simulate beside the server)")


def _print_summary(seeded: Seeded, settings: Settings) -> None:
    print(
        f"seeded the Tianjin demo city: {seeded.stations} stations, {seeded.units} units, "
        f"{seeded.companies} companies, {seeded.guards} guards on duty"
    )
    _print_logins(settings)
    print(f"integration API key '{API_KEY_NAME}' (shown once): {seeded.api_key}")
    print("guard device tokens (shown once):")
    for guard_id, name, token in seeded.guard_tokens:
        print(f"  {guard_id} {name}: {token}")
