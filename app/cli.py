"""The operator's command line: `python -m app <command>` (or `dispatch <command>`)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from app.settings import get_settings


def _serve(args: argparse.Namespace) -> None:
    import uvicorn

    from app.cluster.replica import SecondServer, claim_sqlite_file
    from app.main import create_app, server_options
    from app.observability import configure_logging

    settings = get_settings()
    configure_logging(settings.log_level)
    sqlite = settings.database_url.startswith("sqlite")
    if args.workers > 1 and sqlite:
        sys.exit(
            "serve --workers needs PostgreSQL: SQLite serves one process "
            "(set DISPATCH_DATABASE_URL=postgresql+asyncpg://…)"
        )
    try:
        claim_sqlite_file(settings.database_url)  # held until the process ends
    except SecondServer as refused:
        sys.exit(str(refused))
    host, port = args.host or settings.host, args.port or settings.port
    if args.workers > 1:
        # Each worker process builds its own app from the environment: N replicas on one
        # port, sharing the database like separate `serve` processes do.
        uvicorn.run(
            "app.main:create_app",
            factory=True,
            workers=args.workers,
            host=host,
            port=port,
            log_config=None,
            **server_options(settings),
        )
        return
    app = create_app(settings)
    uvicorn.run(app, host=host, port=port, log_config=None, **server_options(settings))


def _migrate(_args: argparse.Namespace) -> None:
    from app.migrate import upgrade

    upgrade(get_settings().database_url)
    print("database at head")


def _with_context(work: Callable[[Any], Awaitable[None]]) -> None:
    """Run `work(ctx)` against the configured database, outside the server."""

    async def run() -> None:
        from app.clock import Clock
        from app.main import build_context
        from app.observability import Metrics

        ctx = build_context(get_settings(), Clock(), Metrics())
        try:
            await work(ctx)
        finally:
            await ctx.db.dispose()

    asyncio.run(run())


def _seed_demo(_args: argparse.Namespace) -> None:
    from app.demo.seed import seed_demo

    _with_context(seed_demo)


def _create_user(args: argparse.Namespace) -> None:
    from app.auth.principal import SYSTEM
    from app.auth.service import create_user

    async def work(ctx: Any) -> None:
        async with ctx.db.transaction() as session:
            user = await create_user(
                session,
                ctx,
                SYSTEM,
                username=args.username,
                password=args.password,
                role=args.role,
                company_id=args.company_id,
                station_id=args.station_id,
            )
        print(f"created user {user.username} ({user.role}) id={user.id}")

    _with_context(work)


def _create_api_key(args: argparse.Namespace) -> None:
    from app.auth.principal import SYSTEM
    from app.auth.service import create_api_key

    async def work(ctx: Any) -> None:
        scopes = [s.strip() for s in args.scopes.split(",") if s.strip()]
        async with ctx.db.transaction() as session:
            key, plaintext = await create_api_key(
                session, ctx, SYSTEM, name=args.name, scopes=scopes, station_id=args.station
            )
        print(plaintext)
        print(f"# api key {key.id} scopes={','.join(key.scopes)}: shown once", file=sys.stderr)

    _with_context(work)


def _guard_token(args: argparse.Namespace) -> None:
    from app.auth.principal import SYSTEM
    from app.registry.service import issue_guard_token

    async def work(ctx: Any) -> None:
        async with ctx.db.transaction() as session:
            token, plaintext = await issue_guard_token(session, ctx, SYSTEM, args.guard_id)
        print(plaintext)
        print(f"# device token {token.id} for guard {token.guard_id}: shown once", file=sys.stderr)

    _with_context(work)


def _audit_verify(args: argparse.Namespace) -> int:
    """Seal what is pending (unless --no-seal), then check both chains: 0 when intact,
    1 naming each chain's first edited, deleted or out-of-order row."""
    from app.audit.chain import seal
    from app.audit.verify import verify_all
    from app.db import Database

    settings = get_settings()

    async def run() -> int:
        db = Database(
            settings.database_url,
            sqlite_busy_timeout_ms=settings.sqlite_busy_timeout_ms,
            connect_timeout_s=settings.db_connect_timeout_s,
            # Reading a long chain takes longer than a request's statement may.
            statement_timeout_s=max(settings.db_statement_timeout_s, 300.0),
        )
        try:
            if not args.no_seal:
                await seal(db)
            reports = await verify_all(db)
        finally:
            await db.dispose()
        broken = [r for r in reports if not r.intact]
        if broken:
            for report in broken:
                print(f"audit verify: BROKEN {report.summary()}")
            return 1
        print("audit verify: intact; " + "; ".join(r.summary() for r in reports))
        return 0

    return asyncio.run(run())


def _simulate(args: argparse.Namespace) -> int:
    from app.demo.seed import base_url
    from app.simulate.config import SimulationConfig
    from app.simulate.runner import run

    config = SimulationConfig(
        url=(args.url or base_url(get_settings())).rstrip("/"),
        username=args.username,
        password=args.password,
        guards=args.guards,
        incidents_per_minute=args.incidents_per_minute,
        seed=args.seed,
        duration_s=args.duration,
        wait_ready_s=args.wait_ready,
        police=not args.no_police,
    )
    return run(config)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m app", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the HTTP/websocket server")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes on this port, each a replica (PostgreSQL only)",
    )
    serve.set_defaults(handler=_serve)

    commands.add_parser("migrate", help="upgrade the database to head").set_defaults(
        handler=_migrate
    )
    commands.add_parser("seed-demo", help="seed the Tianjin demo city (idempotent)").set_defaults(
        handler=_seed_demo
    )

    user = commands.add_parser("create-user", help="create a console user")
    user.add_argument("--username", required=True)
    user.add_argument("--password", required=True)
    user.add_argument(
        "--role", required=True, choices=["admin", "operator", "supervisor", "company_manager"]
    )
    user.add_argument("--company-id")
    user.add_argument("--station-id")
    user.set_defaults(handler=_create_user)

    key = commands.add_parser("create-api-key", help="create an integration API key (printed once)")
    key.add_argument("--name", required=True)
    key.add_argument(
        "--scopes", required=True, help="comma-separated, e.g. incidents:write,police:act"
    )
    key.add_argument("--station", help="limit the key to one station's incidents")
    key.set_defaults(handler=_create_api_key)

    token = commands.add_parser("guard-token", help="issue a guard device token (printed once)")
    token.add_argument("--guard-id", required=True)
    token.set_defaults(handler=_guard_token)

    audit = commands.add_parser("audit", help="the tamper-evident logs")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True)
    verify = audit_commands.add_parser(
        "verify",
        help="check the audit log's and the event log's hash chains (exit 1 on any break)",
    )
    verify.add_argument(
        "--no-seal", action="store_true", help="check only; do not seal pending rows first"
    )
    verify.set_defaults(handler=_audit_verify)

    sim = commands.add_parser(
        "simulate", help="play guards' phones, incidents and the police CAD against a server"
    )
    sim.add_argument("--url", help="the server (default: from DISPATCH_HOST / DISPATCH_PORT)")
    sim.add_argument("--guards", type=int, default=60, help="guards to play (default 60)")
    sim.add_argument("--incidents-per-minute", type=float, default=2.0, help="(default 2)")
    sim.add_argument("--seed", type=int, help="make the run reproducible")
    sim.add_argument("--username", default="admin", help="an admin (default: the demo's)")
    sim.add_argument("--password", default="demo-admin-pass")
    sim.add_argument("--duration", type=float, help="stop after this many seconds")
    sim.add_argument(
        "--wait-ready", type=float, default=0.0, help="wait this long for the server's /readyz"
    )
    sim.add_argument(
        "--no-police", action="store_true", help="leave escalations to a real police side"
    )
    sim.set_defaults(handler=_simulate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from app.errors import AppError

    try:
        code = args.handler(args)
    except AppError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    return code if isinstance(code, int) else 0
