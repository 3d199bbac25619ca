"""Which committed events may be published, so the stream stays gapless without a lock.

Writers draw event ids from one sequence but commit in any order: id 7 may become visible
before id 6. A reader that published 7 and then saw 6 would break `?after=<id>`
resumption (a client that saw 7 never asks for 6). So readers publish ids in order and
stop at the first missing one until they know it can no longer appear.

What makes that knowable (PostgreSQL): every event writer takes its transaction id
(`pg_current_xact_id()`, app/audit/chain.py `join_writers`) before it draws an id. If id m
is missing while a later id is visible in snapshot S, m was drawn before S was taken, so
its transaction is either still running in S (listed in S's `xip`) or aborted. Once every
transaction running in S has ended, m is visible or never will be. The price is a delay
of about one write transaction while ids are in flight; nothing waits for a lock.

Pure: the feed (app/events/feed.py) reads snapshots and ids and applies the answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Snapshot:
    """A PostgreSQL snapshot: xids below xmin have ended, xids in xip are running."""

    xmin: int
    xmax: int
    xip: frozenset[int]

    @classmethod
    def parse(cls, text: str) -> Snapshot:
        """From `pg_current_snapshot()::text`, e.g. '740:745:740,743'."""
        xmin, xmax, xip = text.split(":")
        return cls(int(xmin), int(xmax), frozenset(int(x) for x in xip.split(",") if x))

    def ended(self, xid: int) -> bool:
        return xid < self.xmin or (xid < self.xmax and xid not in self.xip)


@dataclass(frozen=True)
class Gap:
    """Ids at or below `upto` that are missing were drawn by transactions in `blockers`
    (or aborted ones): once all of those have ended, the missing ids are gone for good."""

    upto: int
    blockers: frozenset[int]


@dataclass(frozen=True)
class Step:
    publish: list[int]  # ids to publish now, ascending
    published: int  # the new watermark: every id at or below it is published or gone
    gap: Gap | None  # what is still awaited


def advance(published: int, visible: Sequence[int], snapshot: Snapshot, gap: Gap | None) -> Step:
    """Given the ids visible in `snapshot` above `published` (ascending), what to publish.

    `gap` is what the previous step left waiting. Its blockers only shrink as they end (a
    gap is never handed the newer transactions of a busy database, or it could wait as
    long as the load lasts); once all have ended its missing ids are skipped. A missing id
    past it starts a new gap, blocked by the transactions running now.
    """
    settled = 0
    if gap is not None:
        running = frozenset(xid for xid in gap.blockers if not snapshot.ended(xid))
        if running:
            gap = Gap(gap.upto, running)
        else:
            settled, gap = gap.upto, None
    out: list[int] = []
    for event_id in visible:
        done = max(published, settled)
        if event_id - 1 > done:
            # Something between is missing and not yet known to be gone: wait for whoever
            # may hold it (the transactions running now include its writer).
            if gap is None or done + 1 > gap.upto:
                gap = Gap(visible[-1], snapshot.xip)
            return Step(out, done, gap)
        out.append(event_id)
        published = event_id
    if visible:  # missing ids up to `settled` are gone (not past the page read, though)
        published = max(published, min(settled, visible[-1]))
    if gap is not None and gap.upto <= published:
        gap = None
    return Step(out, published, gap)
