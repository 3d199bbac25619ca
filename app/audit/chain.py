"""Hash chains over the append-only logs: rows go in unchained, the sealer links them after.

Each sealed row carries `chain_seq` (its position, 1, 2, 3…) and `chain_hash`, the
SHA-256 of the previous row's hash and the row's canonical content (chain name, position,
id and every column a reader sees). Editing a row's content, id or position breaks its
own hash; deleting a row leaves a gap in the positions; a row put in below the sealed head
has no place in the chain. `chain_heads` keeps each chain's last sealed row, so deleting
the newest rows is caught as well.

Why rows are not chained as they are inserted: a writer would need the previous row's
hash, so every writer of the table would queue behind the one before it, through commit.
Event writers run concurrently on PostgreSQL; with overlapping writers, ids are handed
out in one order and committed in another, so "the previous row" is not known at insert
time. Instead writers insert unchained rows and
the sealer (a background pass every second, and on demand before `audit verify`) chains
the committed rows in id order, up to a watermark below which no row can still appear:

- SQLite: the sealing transaction holds the database's write lock, so no other writer is
  between insert and commit; every row it sees is committed, and later rows get higher
  ids (ids are max(id)+1 under that lock).
- PostgreSQL: every transaction that writes a chained table first takes a *shared*
  transaction-scoped advisory lock (`join_writers`, one statement per transaction; shared
  locks never wait for each other, so writers stay concurrent). The sealer reads the id
  sequences' current values, then the transactions holding that lock, and waits for just
  those to end (it blocks nobody). Any id at or below the values it read was drawn by a
  transaction that already held the lock when the holders were listed, so once they are
  gone every such row is committed or never will be; ids above wait for the next pass.

The cost on the write path is that one statement per transaction on PostgreSQL and
nothing on SQLite; the hashing happens in the sealer. The price is a short window (about a
second) in which the newest rows are not yet sealed; `audit verify` seals first.

A chain shows tampering by anyone who does not rewrite every later hash and the head as
well; to catch that too, keep the head hash `audit verify` prints somewhere else.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.db import Database
from app.models import AuditRecord, ChainHead, Event

log = logging.getLogger(__name__)

GENESIS = "0" * 64  # the "previous hash" of a chain's first row
# Held in shared mode by every transaction that inserts into a chained table (PostgreSQL).
CHAIN_WRITERS_LOCK = 0x6368_6169  # "chai"
SEAL_BATCH = 500  # rows linked per sealing transaction (SQLite: writers wait for one batch)
WRITER_WAIT_S = 5.0  # how long a pass waits for writers in flight before trying again later
_JOINED = "chain_writer"  # session.info flag: this transaction holds the shared lock


@dataclass(frozen=True)
class Chain:
    name: str  # chain_heads.name, and how `audit verify` names the chain
    table: Table
    content: tuple[str, ...]  # the hashed columns, in order


EVENTS = Chain(
    "events",
    cast(Table, Event.__table__),
    ("id", "at", "type", "actor", "incident_id", "station_id", "data"),
)
AUDIT = Chain(
    "audit_log",
    cast(Table, AuditRecord.__table__),
    ("id", "at", "type", "actor", "address", "subject", "data"),
)
CHAINS: tuple[Chain, ...] = (EVENTS, AUDIT)


# Hashing ---------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return value


def canonical(chain: Chain, row: Mapping[Any, Any], seq: int) -> bytes:
    """The row as hashed: one JSON array, keys sorted, no whitespace. The sealer and the
    verifier both read the row back from the database, so they see the same values."""
    values = [chain.name, seq, *(_plain(row[column]) for column in chain.content)]
    return json.dumps(values, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def link(previous: str, chain: Chain, row: Mapping[Any, Any], seq: int) -> str:
    """The hash of `row` at position `seq`, after the row whose hash is `previous`."""
    return hashlib.sha256(previous.encode() + b"\n" + canonical(chain, row, seq)).hexdigest()


# Writers ---------------------------------------------------------------------------

# pg_current_xact_id(): the transaction takes its id before it draws any event id, which
# the event feed's watermark relies on (app/events/watermark.py).
_JOIN = text(f"SELECT pg_advisory_xact_lock_shared({CHAIN_WRITERS_LOCK}), pg_current_xact_id()")


async def join_writers(session: AsyncSession, connection: AsyncConnection | None = None) -> None:
    """Call before inserting into a chained table: once per transaction, on PostgreSQL,
    the shared lock the sealer's watermark relies on (see the module's docstring)."""
    if session.info.get(_JOINED):
        return
    connection = connection or await session.connection()
    if connection.dialect.name == "postgresql":
        await connection.execute(_JOIN)
    session.info[_JOINED] = True


# Sealing ---------------------------------------------------------------------------


async def _head(session: AsyncSession, chain: Chain, *, lock: bool) -> ChainHead:
    """The chain's head row, created at the genesis if missing; locked when sealing (on
    PostgreSQL sealers of several processes take turns on it)."""
    head = await session.get(ChainHead, chain.name, with_for_update=lock, populate_existing=True)
    if head is not None:
        return head
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    await session.execute(
        insert(ChainHead)
        .values(name=chain.name, last_id=0, last_seq=0, last_hash=GENESIS)
        .on_conflict_do_nothing(index_elements=["name"])
    )
    head = await session.get(ChainHead, chain.name, with_for_update=lock, populate_existing=True)
    assert head is not None
    return head


CHAIN_WRITERS_HOLDERS = f"""
    SELECT DISTINCT virtualtransaction FROM pg_locks
    WHERE locktype = 'advisory' AND classid = {CHAIN_WRITERS_LOCK >> 32}
      AND objid = {CHAIN_WRITERS_LOCK & 0xFFFF_FFFF} AND objsubid = 1
      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""
_STILL_HOLDING = text(CHAIN_WRITERS_HOLDERS + " AND virtualtransaction IN :holders").bindparams(
    bindparam("holders", expanding=True)
)


async def _pg_watermarks(db: Database, chains: Sequence[Chain], wait_s: float) -> dict[str, int]:
    """Per chain, the highest id below which every row is committed or never will be;
    {} when writers that were in flight did not finish within `wait_s`."""
    async with db.transaction(readonly=True) as session:
        marks: dict[str, int] = {}
        for chain in chains:  # the sequences first, then the lock holders: the order matters
            value = await session.scalar(
                text("SELECT pg_sequence_last_value(pg_get_serial_sequence(:t, 'id')::regclass)"),
                {"t": chain.table.name},
            )
            marks[chain.name] = int(value or 0)
        holders = list((await session.scalars(text(CHAIN_WRITERS_HOLDERS))).all())
    deadline = time.monotonic() + wait_s
    while holders:
        if time.monotonic() > deadline:
            return {}
        await asyncio.sleep(0.01)
        async with db.transaction(readonly=True) as session:
            holders = list((await session.scalars(_STILL_HOLDING, {"holders": holders})).all())
    return marks


async def _pending(db: Database, chains: Sequence[Chain]) -> list[Chain]:
    """The chains with rows above their sealed head (one cheap read)."""
    found = []
    async with db.transaction(readonly=True) as session:
        for chain in chains:
            newest = await session.scalar(select(func.max(chain.table.c.id)))
            head = await session.get(ChainHead, chain.name)
            if newest is not None and newest > (head.last_id if head else 0):
                found.append(chain)
    return found


async def seal(
    db: Database, chains: Iterable[Chain] = CHAINS, *, wait_s: float = WRITER_WAIT_S
) -> dict[str, int]:
    """Link every committed row below the watermark into its chain; rows sealed per chain."""
    todo = await _pending(db, list(chains))
    sealed = {chain.name: 0 for chain in todo}
    if not todo:
        return sealed
    marks: dict[str, int] | None = None
    if not db.is_sqlite:
        marks = await _pg_watermarks(db, todo, wait_s)
        if not marks:
            log.warning("chain sealing postponed: writers still in flight after %.1f s", wait_s)
            return sealed
    for chain in todo:
        upto = None if marks is None else marks[chain.name]
        while True:
            done = await _seal_batch(db, chain, upto)
            sealed[chain.name] += done
            if done < SEAL_BATCH:
                break
    return sealed


def _columns(chain: Chain) -> list[Any]:
    return [chain.table.c[c] for c in chain.content]


async def _seal_batch(db: Database, chain: Chain, upto: int | None) -> int:
    table = chain.table
    async with db.transaction(serial=False) as session:
        head = await _head(session, chain, lock=True)
        query = select(*_columns(chain)).where(table.c.id > head.last_id)
        if upto is not None:
            query = query.where(table.c.id <= upto)
        rows = (await session.execute(query.order_by(table.c.id).limit(SEAL_BATCH))).mappings()
        previous, seq, links = head.last_hash, head.last_seq, []
        last_id = head.last_id
        for row in rows:
            seq += 1
            previous = link(previous, chain, row, seq)
            links.append({"_id": row["id"], "_seq": seq, "_hash": previous})
            last_id = row["id"]
        if not links:
            return 0
        await session.execute(
            update(table)
            .where(table.c.id == bindparam("_id"))
            .values(chain_seq=bindparam("_seq"), chain_hash=bindparam("_hash")),
            links,
        )
        head.last_id, head.last_seq, head.last_hash = last_id, seq, previous
        head.sealed_at = dt.datetime.now(dt.UTC)
    return len(links)
