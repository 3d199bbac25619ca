"""Seed guards and device tokens fast, through the app's own service functions.

Run by the benchmarks as a short-lived process against the server's database (settings
from the DISPATCH_* environment): `python -m bench.seed --guards N --out file.json`
writes [[guard_id, device_token], ...]. Going through the services (not raw SQL) keeps
the rows exactly what the API would have written, events included.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import uuid
from pathlib import Path

from app.auth.principal import SYSTEM
from app.clock import Clock
from app.main import build_context
from app.observability import Metrics
from app.registry.schemas import CompanyCreate, GuardCreate
from app.registry.service import create_company, create_guard, issue_guard_token
from app.settings import get_settings

BATCH = 500
EXPIRES = dt.date(2035, 1, 1)


async def seed(guards: int, companies: int) -> list[list[str]]:
    ctx = build_context(get_settings(), Clock(), Metrics())
    tag = uuid.uuid4().hex[:6]
    out: list[list[str]] = []
    try:
        async with ctx.db.transaction() as session:
            company_ids = [
                (
                    await create_company(
                        session,
                        ctx,
                        SYSTEM,
                        CompanyCreate(
                            name=f"Bench Security {i}",
                            licence_no=f"BENCH-{tag}-{i}",
                            licence_expires_on=EXPIRES,
                        ),
                    )
                ).id
                for i in range(companies)
            ]
        for start in range(0, guards, BATCH):
            async with ctx.db.transaction() as session:
                for i in range(start, min(guards, start + BATCH)):
                    guard = await create_guard(
                        session,
                        ctx,
                        SYSTEM,
                        GuardCreate(
                            company_id=company_ids[i % companies],
                            name=f"Bench Guard {i}",
                            badge_no=f"B-{tag}-{i}",
                            skills=["first_aid"],
                            certificate_expires_on=EXPIRES,
                        ),
                    )
                    _, token = await issue_guard_token(session, ctx, SYSTEM, guard.id)
                    out.append([guard.id, token])
    finally:
        await ctx.db.dispose()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--guards", type=int, required=True)
    parser.add_argument("--companies", type=int, default=20)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.write_text(json.dumps(asyncio.run(seed(args.guards, args.companies))))


if __name__ == "__main__":
    main()
