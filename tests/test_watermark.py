"""The event feed's watermark: ids published in order, none skipped, none held forever.

Pure (app/events/watermark.py); the property test plays random interleavings of writers
that take a transaction id, draw event ids, then commit or abort, against a reader that
looks at random moments, as PostgreSQL would show them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import example, given, settings
from hypothesis import strategies as st

from app.cluster.relay import MAX_PAYLOAD, decode, encode
from app.events.watermark import Gap, Snapshot, advance


def snap(xmin: int, xmax: int, *running: int) -> Snapshot:
    return Snapshot(xmin, xmax, frozenset(running))


def test_a_snapshot_reads_from_postgresql_text() -> None:
    assert Snapshot.parse("740:745:740,743") == snap(740, 745, 740, 743)
    assert Snapshot.parse("12:12:") == snap(12, 12)


def test_ids_in_order_are_published_at_once() -> None:
    step = advance(5, [6, 7, 8], snap(100, 100), None)
    assert (step.publish, step.published, step.gap) == ([6, 7, 8], 8, None)


def test_a_missing_id_holds_back_the_ids_above_it_until_its_writers_end() -> None:
    step = advance(5, [7, 8], snap(90, 100, 93, 97), None)
    assert (step.publish, step.published) == ([], 5)
    assert step.gap == Gap(8, frozenset({93, 97}))
    # 97 still runs: still waiting.
    later = advance(5, [7, 8, 9], snap(97, 101, 97), step.gap)
    assert later.publish == [] and later.gap is not None
    # Everyone who ran has ended and 6 never came: it was rolled back.
    done = advance(5, [7, 8, 9], snap(101, 101), later.gap)
    assert (done.publish, done.published, done.gap) == ([7, 8, 9], 9, None)


def test_a_missing_id_that_commits_is_published_in_its_place() -> None:
    step = advance(5, [7], snap(90, 100, 93), None)
    after = advance(5, [6, 7], snap(90, 100, 93), step.gap)
    assert (after.publish, after.published, after.gap) == ([6, 7], 7, None)


@dataclass
class Writer:
    xid: int
    ids: list[int] = field(default_factory=list)
    state: str = "running"  # running / committed / aborted


@st.composite
def histories(draw: st.DrawFn) -> list[tuple[str, int]]:
    """A random schedule of actions: begin, draw an id, commit, abort, read."""
    steps = draw(st.lists(st.sampled_from(["begin", "draw", "end", "read"]), max_size=80))
    return [(step, draw(st.integers(0, 7))) for step in steps]


# Writer 1 draws id 1, writer 2 draws 2 and commits, two reads while 1 is in flight.
TWO_READS_OVER_A_GAP = [("begin", 0), ("draw", 0), ("begin", 0), ("draw", 1), ("end", 1)] + [
    ("read", 0),
    ("read", 0),
    ("end", 0),
    ("read", 0),
]


@settings(max_examples=300, deadline=None)
@example(TWO_READS_OVER_A_GAP, False)
@given(histories(), st.booleans())
def test_whatever_the_interleaving_the_feed_publishes_every_committed_id_once_in_order(
    history: list[tuple[str, int]], aborts: bool
) -> None:
    next_xid, next_id = 100, 1
    writers: list[Writer] = []
    published, gap, out = 0, None, []

    def read() -> None:
        nonlocal published, gap
        running = frozenset(w.xid for w in writers if w.state == "running")
        shot = Snapshot(min(running, default=next_xid), next_xid, running)
        visible = sorted(i for w in writers if w.state == "committed" for i in w.ids)
        step = advance(published, [i for i in visible if i > published], shot, gap)
        out.extend(step.publish)
        published, gap = step.published, step.gap

    for action, pick in history:
        running = [w for w in writers if w.state == "running"]
        if action == "begin" or (action != "read" and not running):
            writers.append(Writer(next_xid))  # takes its xid before drawing any id
            next_xid += 1
        elif action == "draw":
            running[pick % len(running)].ids.append(next_id)
            next_id += 1
        elif action == "end":
            ending = running[pick % len(running)]
            ending.state = "aborted" if aborts and pick % 3 == 0 else "committed"
        else:
            read()
    for writer in writers:  # everyone finishes; the reader catches up
        if writer.state == "running":
            writer.state = "committed"
    read()
    read()
    committed = sorted(i for w in writers if w.state == "committed" for i in w.ids)
    assert out == committed  # each committed id exactly once, in id order
    assert published >= max(committed, default=0)


def test_relay_payloads_stay_under_postgresqls_limit_and_read_back() -> None:
    items = [f"grd_{n:020d}:{n}" for n in range(2000)]
    payloads = encode("replica-a", 12.5, "g", items)
    assert len(payloads) > 1 and all(len(p.encode()) <= MAX_PAYLOAD for p in payloads)
    read = [decode(p) for p in payloads]
    assert {(origin, kind) for origin, _, kind, _ in read} == {("replica-a", "g")}
    assert [item for *_, chunk in read for item in chunk] == items


def test_a_gap_waits_for_its_own_writers_only_never_for_newer_ones() -> None:
    # 6 is missing; 93 and 97 ran when the gap was seen.
    step = advance(5, [7], snap(93, 100, 93, 97), None)
    # Busy database: 97 still runs, newer writers 100–110 come and go.
    for newer in range(100, 110):
        step = advance(5, [7, 8], snap(97, newer + 1, 97, newer), step.gap)
        assert step.gap == Gap(7, frozenset({97}))  # never the newer ones
    done = advance(5, [7, 8], snap(110, 111, 110), step.gap)  # 97 ended: 6 is gone
    assert (done.publish, done.published) == ([7, 8], 8)


def test_a_settled_gap_never_skips_ids_past_the_page_read() -> None:
    step = advance(5, [7, 8, 9, 10], snap(90, 100, 93), None)
    # 93 ended; the page holds 7 only (a page limit), ids up to 10 exist.
    later = advance(5, [7], snap(100, 100), step.gap)
    assert (later.publish, later.published) == ([7], 7)
