"""Check a hash chain row by row and name the first row that breaks it (`audit verify`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import func, select

from app.audit.chain import CHAINS, GENESIS, Chain, link
from app.db import Database
from app.models import ChainHead

PAGE = 5000  # rows read per transaction

Kind = Literal["edited", "deleted", "inserted"]


@dataclass(frozen=True)
class Break:
    chain: str
    kind: Kind
    row_id: int | None  # the row named (for a deletion: the deleted row's id when known)
    message: str

    def __str__(self) -> str:
        return f"{self.chain}: {self.message}"


@dataclass(frozen=True)
class Report:
    chain: str
    sealed: int  # rows checked
    pending: int  # rows after the head, not sealed yet
    head_id: int
    head_hash: str
    broken: Break | None

    @property
    def intact(self) -> bool:
        return self.broken is None

    def summary(self) -> str:
        if self.broken is not None:
            return str(self.broken)
        return (
            f"{self.chain}: {self.sealed} rows intact up to id {self.head_id} "
            f"(head {self.head_hash[:16]}), {self.pending} not sealed yet"
        )


async def _rows(db: Database, chain: Chain, upto: int) -> AsyncIterator[Mapping[Any, Any]]:
    """Every row with id ≤ `upto` in id order, a page per short read transaction."""
    table = chain.table
    columns = [table.c[c] for c in chain.content] + [table.c.chain_seq, table.c.chain_hash]
    after: int | None = None
    while True:
        query = select(*columns).where(table.c.id <= upto)
        if after is not None:
            query = query.where(table.c.id > after)
        async with db.transaction(readonly=True) as session:
            page = list((await session.execute(query.order_by(table.c.id).limit(PAGE))).mappings())
        for row in page:
            yield row
        if len(page) < PAGE:
            return
        after = page[-1]["id"]


def _gap(
    previous_id: int | None, row_id: int | None, first: int, last: int
) -> tuple[int | None, str]:
    """Which rows are missing between two rows, as precisely as the ids allow."""
    positions = f"position {first}" if first == last else f"positions {first}–{last}"
    where = (
        f"after row {previous_id}"
        if row_id is None
        else f"before row {row_id}"
        if previous_id is None
        else f"between rows {previous_id} and {row_id}"
    )
    known = (
        previous_id is not None
        and row_id is not None
        and row_id - previous_id - 1 == last - first + 1
    )
    if known and first == last:
        assert previous_id is not None
        return previous_id + 1, f"row {previous_id + 1} (chain {positions}) deleted, {where}"
    return None, f"chain {positions} missing {where}: rows deleted"


async def verify(db: Database, chain: Chain) -> Report:
    """Walk the chain in id order up to its sealed head; the first break, if any."""
    async with db.transaction(readonly=True) as session:
        head = await session.get(ChainHead, chain.name)
        head_id, head_seq, head_hash = (
            (head.last_id, head.last_seq, head.last_hash) if head else (0, 0, GENESIS)
        )
        pending = int(
            await session.scalar(
                select(func.count()).select_from(chain.table).where(chain.table.c.id > head_id)
            )
            or 0
        )

    def report(broken: Break | None, sealed: int) -> Report:
        return Report(chain.name, sealed, pending, head_id, head_hash, broken)

    def broken(kind: Kind, row_id: int | None, message: str, sealed: int) -> Report:
        return report(Break(chain.name, kind, row_id, message), sealed)

    previous = GENESIS  # hash of the last row that checked out
    before_previous: str | None = None
    seq = 0  # its position
    previous_id: int | None = None
    checked = 0
    async for row in _rows(db, chain, head_id):
        row_id, row_seq, row_hash = row["id"], row["chain_seq"], row["chain_hash"]
        if row_seq is None or row_hash is None:
            return broken(
                "inserted",
                row_id,
                f"row {row_id} inserted out of order: it is not in the chain but lies below "
                f"the sealed head (row {head_id})",
                checked,
            )
        if row_seq > seq + 1:
            # A gap in the positions: rows deleted, unless no row fits between the two ids,
            # or the row's hash is right for the next position: then its position was edited.
            if (previous_id is not None and row_id == previous_id + 1) or link(
                previous, chain, row, seq + 1
            ) == row_hash:
                return broken(
                    "edited",
                    row_id,
                    f"row {row_id} edited: it claims chain position {row_seq}, not {seq + 1}",
                    checked,
                )
            missing_id, message = _gap(previous_id, row_id, seq + 1, row_seq - 1)
            return broken("deleted", missing_id, message, checked)
        if row_seq <= seq:
            # Its position is taken. If it links to the row before the one that took it,
            # that one was slipped in; otherwise this one was.
            if (
                row_seq == seq
                and before_previous is not None
                and link(before_previous, chain, row, row_seq) == row_hash
            ):
                intruder = previous_id
            else:
                intruder = row_id
            return broken(
                "inserted",
                intruder,
                f"row {intruder} inserted out of order: it takes chain position {row_seq}, "
                "which belongs to another row",
                checked,
            )
        if link(previous, chain, row, row_seq) != row_hash:
            return broken(
                "edited",
                row_id,
                f"row {row_id} edited: its content no longer matches its hash "
                f"(chain position {row_seq})",
                checked,
            )
        before_previous, previous, seq, previous_id = previous, row_hash, row_seq, row_id
        checked += 1
    if seq < head_seq:
        missing_id, message = _gap(previous_id, None, seq + 1, head_seq)
        if previous_id is not None and head_seq == seq + 1 and head_id > previous_id:
            missing_id, message = head_id, f"row {head_id} (the sealed head) deleted"
        return broken("deleted", missing_id, message, checked)
    if seq != head_seq or previous != head_hash or (previous_id or 0) != head_id:
        return broken(
            "edited",
            previous_id,
            f"the chain ends at row {previous_id} but its recorded head is row {head_id}: "
            "the head or the last row was edited",
            checked,
        )
    return report(None, checked)


async def verify_all(db: Database) -> list[Report]:
    return [await verify(db, chain) for chain in CHAINS]
