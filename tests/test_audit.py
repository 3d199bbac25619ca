"""The security audit log (GET /api/v1/audit) and the hash chains over it and the event
log: `audit verify` names the first row edited, deleted or inserted out of order."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import delete, insert, select, text, update

from app.audit.chain import AUDIT, CHAINS, EVENTS, Chain, join_writers, link, seal
from app.audit.log import AuditLog, to_10ms
from app.audit.verify import verify, verify_all
from app.clock import Clock
from app.db import Database
from app.events.log import EventLog
from app.migrate import ROOT
from app.models import AuditRecord, ChainHead
from tests.harness import Harness

pytestmark = pytest.mark.usefixtures("backend")

ROWS = 8  # per chain


# The chains, on a database of their own (tampering must not touch the shared one) --------


@pytest.fixture
async def logs(own_database_url: str) -> AsyncIterator[Database]:
    """A database with ROWS events and ROWS audit records, not sealed yet."""
    db = Database(own_database_url)
    events = EventLog()
    audit = AuditLog(SimpleNamespace(clock=Clock(), db=db))  # type: ignore[arg-type]
    at = dt.datetime.now(dt.UTC)
    for n in range(ROWS):
        async with db.transaction() as session:
            await events.record(
                session,
                type="test.happened",
                actor="user:usr_test",
                at=at + dt.timedelta(milliseconds=n),
                data={"n": n, "ratio": 0.1 * n, "note": "naïve ünïcode"},
            )
            await audit.record(
                session, "test.audited", actor="user:usr_test", address="192.0.2.7", data={"n": n}
            )
    try:
        yield db
    finally:
        await db.dispose()


async def ids(db: Database, chain: Chain) -> list[int]:
    async with db.transaction(readonly=True) as session:
        return list(
            (await session.scalars(select(chain.table.c.id).order_by(chain.table.c.id))).all()
        )


async def execute(db: Database, statement: Any, params: Any = None) -> None:
    async with db.transaction(serial=False) as session:
        await session.execute(statement, params)


async def test_sealed_chains_verify_intact_and_new_rows_wait_for_the_next_seal(
    logs: Database,
) -> None:
    assert await seal(logs) == {"events": ROWS, "audit_log": ROWS}
    reports = await verify_all(logs)
    assert [(r.chain, r.intact, r.sealed, r.pending) for r in reports] == [
        ("events", True, ROWS, 0),
        ("audit_log", True, ROWS, 0),
    ]
    async with logs.transaction(readonly=True) as session:
        head = await session.get(ChainHead, "events")
        last = (
            await session.execute(
                select(EVENTS.table.c.chain_seq, EVENTS.table.c.chain_hash)
                .order_by(EVENTS.table.c.id.desc())
                .limit(1)
            )
        ).one()
    assert head is not None and (head.last_seq, head.last_hash) == tuple(last)
    assert len(head.last_hash) == 64

    async with logs.transaction() as session:
        await EventLog().record(session, type="test.later", actor="system:cli", at=head.sealed_at)
    report = await verify(logs, EVENTS)
    assert report.intact and report.pending == 1  # not sealed yet is not a break
    assert await seal(logs) == {"events": 1}
    assert await seal(logs) == {}  # nothing new: nothing written
    assert (await verify(logs, EVENTS)).sealed == ROWS + 1


async def test_an_edited_row_is_named(logs: Database) -> None:
    await seal(logs)
    event_ids, audit_ids = await ids(logs, EVENTS), await ids(logs, AUDIT)
    await execute(
        logs,
        text("UPDATE events SET actor = 'user:usr_other' WHERE id = :id"),
        {"id": event_ids[3]},
    )
    await execute(
        logs,
        update(AuditRecord).where(AuditRecord.id == audit_ids[5]).values(address="198.51.100.1"),
    )
    events, audit = await verify_all(logs)
    assert events.broken is not None and audit.broken is not None
    assert (events.broken.kind, events.broken.row_id) == ("edited", event_ids[3])
    assert (audit.broken.kind, audit.broken.row_id) == ("edited", audit_ids[5])
    assert f"row {event_ids[3]} edited" in events.summary()


async def test_an_edited_time_or_position_is_an_edit_too(logs: Database) -> None:
    await seal(logs)
    event_ids, audit_ids = await ids(logs, EVENTS), await ids(logs, AUDIT)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    await execute(
        logs, update(EVENTS.table).where(EVENTS.table.c.id == event_ids[0]).values(at=later)
    )
    # A row moved to another place in the chain, its hash left as it was.
    await execute(
        logs, update(AUDIT.table).where(AUDIT.table.c.id == audit_ids[2]).values(chain_seq=4)
    )
    events, audit = await verify_all(logs)
    assert events.broken is not None and audit.broken is not None
    assert (events.broken.kind, events.broken.row_id) == ("edited", event_ids[0])
    assert audit.broken.row_id == audit_ids[2]


async def test_a_deleted_row_is_named(logs: Database) -> None:
    await seal(logs)
    event_ids, audit_ids = await ids(logs, EVENTS), await ids(logs, AUDIT)
    await execute(logs, delete(EVENTS.table).where(EVENTS.table.c.id == event_ids[4]))
    await execute(logs, delete(AuditRecord).where(AuditRecord.id.in_(audit_ids[1:3])))
    events, audit = await verify_all(logs)
    assert events.broken is not None and audit.broken is not None
    assert (events.broken.kind, events.broken.row_id) == ("deleted", event_ids[4])
    assert f"row {event_ids[4]} (chain position 5) deleted" in events.summary()
    assert audit.broken.kind == "deleted"
    assert f"between rows {audit_ids[0]} and {audit_ids[3]}" in audit.summary()


async def test_deleting_the_newest_rows_is_caught(logs: Database) -> None:
    await seal(logs)
    event_ids, audit_ids = await ids(logs, EVENTS), await ids(logs, AUDIT)
    await execute(logs, delete(EVENTS.table).where(EVENTS.table.c.id == event_ids[-1]))
    await execute(logs, delete(AuditRecord).where(AuditRecord.id.in_(audit_ids[-3:])))
    events, audit = await verify_all(logs)
    assert events.broken is not None and audit.broken is not None
    assert (events.broken.kind, events.broken.row_id) == ("deleted", event_ids[-1])
    assert "the sealed head" in events.summary()
    assert audit.broken.kind == "deleted" and f"after row {audit_ids[-4]}" in audit.summary()


async def _with_a_gap(db: Database) -> tuple[list[int], list[int]]:
    """Sealed chains with a hole in the ids (as a rolled-back insert leaves on PostgreSQL):
    row 4 of each never committed."""
    event_ids, audit_ids = await ids(db, EVENTS), await ids(db, AUDIT)
    await execute(db, delete(EVENTS.table).where(EVENTS.table.c.id == event_ids[3]))
    await execute(db, delete(AuditRecord).where(AuditRecord.id == audit_ids[3]))
    await seal(db)
    assert all(r.intact for r in await verify_all(db))
    return event_ids, audit_ids


async def test_a_row_inserted_out_of_order_is_named(logs: Database) -> None:
    event_ids, audit_ids = await _with_a_gap(logs)
    forged_at = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    await execute(
        logs,
        insert(EVENTS.table).values(
            id=event_ids[3], type="test.happened", actor="user:usr_test", at=forged_at, data={}
        ),
    )
    await execute(
        logs,
        insert(AuditRecord).values(
            id=audit_ids[3],
            at=to_10ms(forged_at),
            type="auth.sign_in",
            actor="user:usr_x",
            data={},
        ),
    )
    events, audit = await verify_all(logs)
    assert events.broken is not None and audit.broken is not None
    assert (events.broken.kind, events.broken.row_id) == ("inserted", event_ids[3])
    assert (audit.broken.kind, audit.broken.row_id) == ("inserted", audit_ids[3])
    assert f"row {event_ids[3]} inserted out of order" in events.summary()


async def test_an_inserted_row_with_a_forged_link_is_named(logs: Database) -> None:
    """Whoever knows the hashing can link a row in, but not without taking another row's
    place in the chain: the row after it still links to the row before the forgery."""
    event_ids, _ = await _with_a_gap(logs)
    columns = [EVENTS.table.c[c] for c in EVENTS.content]
    async with logs.transaction(readonly=True) as session:
        before = (
            (
                await session.execute(
                    select(*columns, EVENTS.table.c.chain_seq, EVENTS.table.c.chain_hash).where(
                        EVENTS.table.c.id == event_ids[2]
                    )
                )
            )
            .mappings()
            .one()
        )
    forged = {**before, "id": event_ids[3], "actor": "user:usr_forger"}
    seq = before["chain_seq"] + 1
    forged_hash = link(before["chain_hash"], EVENTS, forged, seq)
    await execute(
        logs,
        insert(EVENTS.table).values(
            **{c: forged[c] for c in EVENTS.content}, chain_seq=seq, chain_hash=forged_hash
        ),
    )
    report = await verify(logs, EVENTS)
    assert report.broken is not None
    assert (report.broken.kind, report.broken.row_id) == ("inserted", event_ids[3])


async def test_rows_committed_out_of_id_order_are_sealed_in_id_order(
    backend: str, own_database_url: str
) -> None:
    """PostgreSQL writers overlap: an id drawn first may commit last. The sealer waits for
    the writers in flight instead of chaining past the row still to come (and then
    calling it inserted out of order); it blocks none of them."""
    if backend == "sqlite":
        pytest.skip("SQLite writers never overlap: each holds the database's write lock")
    db = Database(own_database_url)
    audit = AuditLog(SimpleNamespace(clock=Clock(), db=db))  # type: ignore[arg-type]
    try:
        first_drawn = asyncio.Event()
        release = asyncio.Event()

        async def slow_writer() -> None:
            async with db.transaction(serial=False) as session:
                await audit.record(session, "test.slow", actor="user:usr_slow")
                first_drawn.set()
                await release.wait()

        slow = asyncio.create_task(slow_writer())
        await first_drawn.wait()
        async with db.transaction(serial=False) as session:  # not blocked by the slow one
            await audit.record(session, "test.fast", actor="user:usr_fast")
        assert await seal(db, [AUDIT], wait_s=0.2) == {"audit_log": 0}  # waits, then defers
        release.set()
        await slow
        assert await seal(db, [AUDIT]) == {"audit_log": 2}
        report = await verify(db, AUDIT)
        assert report.intact and report.sealed == 2
        async with db.transaction(readonly=True) as session:
            types = (
                await session.scalars(select(AuditRecord.type).order_by(AuditRecord.chain_seq))
            ).all()
        assert types == ["test.slow", "test.fast"]  # id order, not commit order
    finally:
        await db.dispose()


async def test_join_writers_is_one_statement_per_transaction(own_database_url: str) -> None:
    db = Database(own_database_url)
    statements: list[str] = []
    try:
        from sqlalchemy import event

        def count(*args: Any) -> None:
            statements.append(args[2])

        event.listen(db.engine.sync_engine, "before_cursor_execute", count)
        async with db.transaction(serial=False) as session:
            for _ in range(3):
                await join_writers(session)
        expected = 0 if db.is_sqlite else 1
        assert sum("pg_advisory_xact_lock_shared" in s for s in statements) == expected
    finally:
        await db.dispose()


def _cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DISPATCH_DATABASE_URL": url, "DISPATCH_ENV": "test"}
    return subprocess.run(
        [sys.executable, "-m", "app", "audit", "verify", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_the_command_seals_verifies_and_exits_non_zero_on_a_break(
    logs: Database, own_database_url: str
) -> None:
    intact = await asyncio.to_thread(_cli, own_database_url)
    assert intact.returncode == 0, intact.stdout + intact.stderr
    lines = intact.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("audit verify: intact")
    assert f"events: {ROWS} rows intact" in lines[0] and f"audit_log: {ROWS} rows" in lines[0]

    event_ids = await ids(logs, EVENTS)
    await execute(
        logs,
        text("UPDATE events SET data = :d WHERE id = :id"),
        {"d": '{"n": 99}', "id": event_ids[1]},
    )
    broken = await asyncio.to_thread(_cli, own_database_url, "--no-seal")
    assert broken.returncode == 1
    assert f"BROKEN events: row {event_ids[1]} edited" in broken.stdout


# The audit log through the API (the shared server) ----------------------------------------


async def audit_of(harness: Harness, **params: Any) -> list[dict[str, Any]]:
    response = await harness.get("/api/v1/audit", params={"limit": 500, **params})
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


async def whoami(harness: Harness, role: str) -> str:
    me = (await harness.get("/api/v1/auth/me", role=role)).json()
    return f"user:{me['id']}"


async def test_a_refused_request_is_audited_with_actor_address_and_time(harness: Harness) -> None:
    token = await harness.login(await harness.user("operator"))  # a caller of its own
    headers = {"Authorization": f"Bearer {token}"}
    operator = f"user:{(await harness.client.get('/api/v1/auth/me', headers=headers)).json()['id']}"
    response = await harness.client.get("/api/v1/audit", headers=headers)
    assert response.status_code == 403
    (record,) = await audit_of(harness, type="access.denied", actor=operator)
    assert record["subject"] == "GET /api/v1/audit"
    assert record["address"] == "127.0.0.1"
    assert record["data"]["code"] == "forbidden" and "audit:read" in record["data"]["message"]
    at = dt.datetime.fromisoformat(record["at"])
    assert at.tzinfo is not None and at.microsecond % 10_000 == 0
    assert abs((at - harness.now()).total_seconds()) < 60


async def test_user_key_and_device_token_changes_are_audited(harness: Harness) -> None:
    admin = await whoami(harness, "admin")
    user = await harness.post(
        "/api/v1/users",
        {
            "username": f"audited-{os.urandom(4).hex()}",
            "password": "long-enough-pw",
            "role": "operator",
        },
    )
    assert user.status_code == 201, user.text
    key = (
        await harness.post("/api/v1/api-keys", {"name": "cad", "scopes": ["incidents:read"]})
    ).json()
    assert (
        await harness.client.delete(
            f"/api/v1/api-keys/{key['id']}", headers=await harness.headers()
        )
    ).status_code == 204
    guard = await harness.make_guard()
    token = (await harness.post(f"/api/v1/guards/{guard['id']}/tokens")).json()
    assert (
        await harness.client.delete(
            f"/api/v1/guards/{guard['id']}/tokens/{token['token_id']}",
            headers=await harness.headers(),
        )
    ).status_code == 204

    records = await audit_of(harness, actor=admin)
    seen = {(r["type"], r["subject"]) for r in records}
    assert ("user.created", f"user:{user.json()['id']}") in seen
    assert ("api_key.created", f"api_key:{key['id']}") in seen
    assert ("api_key.revoked", f"api_key:{key['id']}") in seen
    assert ("guard.token_issued", f"guard:{guard['id']}") in seen
    assert ("guard.token_revoked", f"guard:{guard['id']}") in seen
    assert {r["address"] for r in records if r["subject"] == f"guard:{guard['id']}"} == {
        "127.0.0.1"
    }
    assert "key" not in next(r for r in records if r["type"] == "api_key.created")["data"]


async def test_the_audit_log_is_for_admins_and_supervisors(harness: Harness) -> None:
    company = await harness.make_company()
    assert (await harness.get("/api/v1/audit", role="supervisor")).status_code == 200
    for role, kw in (("operator", {}), ("company_manager", {"company_id": company["id"]})):
        response = await harness.client.get(
            "/api/v1/audit", headers=await harness.headers(role, **kw)
        )
        assert response.status_code == 403


async def test_filters_and_pages(harness: Harness) -> None:
    async with harness.ctx.db.transaction() as session:
        for n in range(5):
            await harness.ctx.audit.record(
                session, "test.paged", actor="user:usr_pager", subject="test:paged", data={"n": n}
            )
    everything = await audit_of(harness, type="test.paged", actor="user:usr_pager")
    assert [r["data"]["n"] for r in everything][:5] == [4, 3, 2, 1, 0]  # newest first
    first = await harness.get("/api/v1/audit", params={"type": "test.paged", "limit": 2})
    body = first.json()
    assert len(body["items"]) == 2 and body["next_cursor"]
    second = await harness.get(
        "/api/v1/audit", params={"type": "test.paged", "limit": 2, "cursor": body["next_cursor"]}
    )
    assert [r["id"] for r in second.json()["items"]] == [r["id"] for r in everything[2:4]]
    at = dt.datetime.fromisoformat(everything[0]["at"])
    window = {
        "since": (at - dt.timedelta(seconds=1)).isoformat(),
        "until": (at + dt.timedelta(seconds=1)).isoformat(),
    }
    assert len(await audit_of(harness, type="test.paged", **window)) >= 5
    later = {"since": (at + dt.timedelta(seconds=1)).isoformat()}
    assert await audit_of(harness, type="test.paged", **later) == []
    assert await audit_of(harness, subject="test:paged", actor="user:usr_nobody") == []
    naive = await harness.get("/api/v1/audit", params={"since": "2026-01-01T00:00:00"})
    assert naive.status_code == 422


async def test_the_services_chains_verify_intact(harness: Harness) -> None:
    """Everything the test session wrote, events and audit records, seals into two
    intact chains (sealing runs alongside the other tests' writers)."""
    await harness.ctx.audit.flush()
    await seal(harness.ctx.db)
    reports = await verify_all(harness.ctx.db)
    assert all(r.intact for r in reports), [r.summary() for r in reports]
    assert all(r.sealed > 0 for r in reports)


@pytest.mark.parametrize("chain", CHAINS, ids=lambda c: c.name)
def test_hash_covers_every_column_a_reader_sees(chain: Chain) -> None:
    shown = {c.name for c in chain.table.columns} - {"chain_seq", "chain_hash"}
    assert set(chain.content) == shown
    assert chain.content[0] == "id"


def test_readme_documents_the_command() -> None:
    readme = Path(ROOT, "README.md").read_text()
    assert "python -m app audit verify" in readme


async def test_the_dispatch_path_pays_at_most_one_statement_per_transaction(
    harness: Harness, area: tuple[float, float]
) -> None:
    """Incident POST → offers: on PostgreSQL each transaction that writes events adds the
    shared chain lock once (never per event); on SQLite nothing is added."""
    from sqlalchemy import event

    from tests.phones import guard_at, offset

    phones = [await guard_at(harness, offset(area, north_m=m)) for m in (100, 200)]
    statements: list[str] = []

    def count(*args: Any) -> None:  # before_cursor_execute(conn, cursor, statement, …)
        statements.append(args[2])

    await harness.ctx.audit.flush()
    engine = harness.ctx.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        await harness.make_incident(area, category="theft", priority=3)
        for phone in phones:
            await phone.expect("offer")
    finally:
        event.remove(engine, "before_cursor_execute", count)
    shared = sum("pg_advisory_xact_lock_shared" in s for s in statements)
    event_inserts = sum(s.startswith("INSERT INTO events") for s in statements)
    assert event_inserts >= 1
    if harness.ctx.db.is_sqlite:
        assert shared == 0
    else:
        assert 1 <= shared <= event_inserts
    for phone in phones:
        await phone.close()


# Sign-in ---------------------------------------------------------------------------------


async def sign_in(harness: Harness, username: str, password: str) -> int:
    response = await harness.client.post(
        "/api/v1/auth/token", data={"username": username, "password": password}
    )
    return response.status_code


async def test_sign_ins_failures_and_a_lockout_are_audited(harness: Harness) -> None:
    harness.ctx.login_throttle.reset()
    username = await harness.user("operator")
    assert await sign_in(harness, username, "correct-horse-battery") == 200
    me = (
        await harness.client.get(
            "/api/v1/auth/me", headers={"Authorization": f"Bearer {await harness.login(username)}"}
        )
    ).json()
    user = f"user:{me['id']}"
    threshold = harness.ctx.settings.lockout_threshold
    for _ in range(threshold):
        assert await sign_in(harness, username, "wrong-password") == 401
    assert await sign_in(harness, username, "correct-horse-battery") == 401  # locked
    assert await sign_in(harness, f"nobody-{os.urandom(4).hex()}", "whatever-pw") == 401
    harness.ctx.login_throttle.reset()

    records = [  # oldest first
        r for r in reversed(await audit_of(harness, subject=user)) if r["type"].startswith("auth.")
    ]
    kinds = [(r["type"], r["actor"], r["data"].get("reason")) for r in records]
    assert kinds[:2] == [("auth.sign_in", user, None)] * 2
    failed = [k for k in kinds if k[0] == "auth.sign_in_failed"]
    assert failed == [("auth.sign_in_failed", "anonymous", "wrong_password")] * threshold + [
        ("auth.sign_in_failed", "anonymous", "locked")
    ]
    (locked,) = [r for r in records if r["type"] == "auth.locked_out"]
    assert locked["data"]["username"] == username and locked["data"]["locked_until"]
    assert {r["address"] for r in records} == {"127.0.0.1"}
    first = records[0]["data"]
    assert first == {"username": username, "expires_in": harness.ctx.settings.access_token_ttl_s}
    unknown = await audit_of(harness, type="auth.sign_in_failed", actor="anonymous")
    assert any(r["data"]["reason"] == "unknown_user" and r["subject"] is None for r in unknown)


async def test_a_throttled_sign_in_is_audited(harness: Harness) -> None:
    throttle = harness.ctx.login_throttle
    throttle.reset()
    username = f"sprayed-{os.urandom(4).hex()}"
    try:
        for _ in range(harness.ctx.settings.login_failures_per_username):
            throttle.started("127.0.0.1", username)
            throttle.finished("127.0.0.1", username, "failed")
        assert await sign_in(harness, username, "whatever-pw") == 429
    finally:
        throttle.reset()
    records = [
        r
        for r in await audit_of(harness, type="auth.sign_in_failed")
        if r["data"]["username"] == username
    ]
    assert len(records) == 1 and records[0]["data"]["reason"] == "throttled"
    assert records[0]["data"]["retry_after_s"] >= 1
