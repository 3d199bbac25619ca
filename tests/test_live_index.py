"""The live index answers exactly what a scan of every guard would, touching only nearby cells."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from app.geo.distance import METRES_PER_DEGREE_LAT, metres_per_degree_lon
from app.geo.live_index import GuardEntry, LiveIndex

NOW = 1_800_000_000.0
FRESHNESS_S = 120.0


def _index(points: list[tuple[float, float]], cell_m: float) -> LiveIndex:
    index = LiveIndex(cell_m=cell_m, freshness_s=FRESHNESS_S)
    for i, (lat, lon) in enumerate(points):
        entry = index.put(GuardEntry(f"g{i:04d}", "c", frozenset(), 1.4, True, NOW + 3600))
        index.move(entry, lat, lon, NOW, NOW)
        index.set_duty(entry, True)
    return index


def _brute_force(
    index: LiveIndex, lat: float, lon: float, k: int, radius_m: float
) -> list[tuple[str, float]]:
    m_lon = metres_per_degree_lon(lat)
    found = []
    for entry in index:
        dispatchable = (
            entry.on_duty
            and entry.eligible
            and not entry.engaged
            and entry.eligible_until > NOW
            and entry.seen_at >= NOW - FRESHNESS_S
        )
        if not dispatchable:
            continue
        d = math.hypot((entry.lat - lat) * METRES_PER_DEGREE_LAT, (entry.lon - lon) * m_lon)
        if d <= radius_m:
            found.append((d, entry.guard_id))
    found.sort()
    return [(guard_id, d) for d, guard_id in found[:k]]


# Points in a 6 km box (about 0.054° × 0.07° at 39°N), clustered and spread alike.
coords = st.tuples(st.floats(39.10, 39.154), st.floats(117.17, 117.24))


@settings(max_examples=300, deadline=None)
@given(
    points=st.lists(coords, max_size=120),
    query=coords,
    k=st.integers(1, 15),
    radius_m=st.floats(1.0, 5000.0),
    cell_m=st.sampled_from([40.0, 150.0, 250.0, 1000.0]),
    engaged=st.sets(st.integers(0, 119), max_size=20),
)
def test_nearest_equals_brute_force(points, query, k, radius_m, cell_m, engaged):
    index = _index(points, cell_m)
    for i in engaged:
        if i < len(points):
            index.get(f"g{i:04d}").activity = "offered"
    got = [
        (n.entry.guard_id, n.distance_m)
        for n in index.nearest(*query, k=k, radius_m=radius_m, now=NOW)
    ]
    want = _brute_force(index, *query, k, radius_m)
    assert [g for g, _ in got] == [g for g, _ in want]
    for (_, d_got), (_, d_want) in zip(got, want, strict=True):
        assert math.isclose(d_got, d_want, rel_tol=1e-9, abs_tol=1e-6)


def test_within_returns_everyone_in_the_disc_nearest_first():
    points = [(39.12 + i * 0.0009, 117.20) for i in range(30)]  # 100 m apart, northwards
    index = _index(points, 250.0)
    found = index.within(39.12, 117.20, radius_m=1050.0, now=NOW)
    assert [n.entry.guard_id for n in found] == [f"g{i:04d}" for i in range(11)]


def test_not_dispatchable_guards_are_never_returned():
    index = _index([(39.12, 117.20)] * 6, 250.0)
    entries = [index.get(f"g{i:04d}") for i in range(6)]
    entries[0].activity = "offered"
    entries[1].eligible = False
    entries[2].eligible_until = NOW - 1  # licence expired
    index.set_duty(entries[3], False)
    entries[4].seen_at = NOW - FRESHNESS_S - 1  # position too old
    found = index.nearest(39.12, 117.20, k=10, radius_m=100.0, now=NOW)
    assert [n.entry.guard_id for n in found] == ["g0005"]
    entries[0].activity = None
    found = index.nearest(39.12, 117.20, k=10, radius_m=100.0, now=NOW)
    assert [n.entry.guard_id for n in found] == ["g0000", "g0005"]


def test_a_guard_moves_between_cells_and_is_found_where_it_now_is():
    index = _index([(39.12, 117.20)], 100.0)
    entry = index.get("g0000")
    index.move(entry, 39.14, 117.22, NOW, NOW)
    assert index.nearest(39.12, 117.20, k=1, radius_m=500.0, now=NOW) == []
    assert [n.entry.guard_id for n in index.nearest(39.14, 117.22, k=1, radius_m=5.0, now=NOW)] == [
        "g0000"
    ]


def test_no_answer_for_k_zero_or_an_empty_index():
    assert LiveIndex().nearest(39.12, 117.20, k=5, radius_m=1000.0, now=NOW) == []
    assert LiveIndex().within(39.12, 117.20, radius_m=1000.0, now=NOW) == []
    index = _index([(39.12, 117.20)], 250.0)
    assert index.nearest(39.12, 117.20, k=0, radius_m=1000.0, now=NOW) == []


def test_a_registry_update_keeps_the_entry_a_socket_holds():
    index = _index([(39.12, 117.20), (39.1201, 117.20)], 250.0)
    held = index.get("g0000")  # what the guard's open socket keeps moving
    assert (
        index.put(GuardEntry("g0000", "c2", frozenset({"first_aid"}), 4.0, True, NOW + 60)) is held
    )
    assert held.company_id == "c2" and held.speed_mps == 4.0 and held.on_duty
    index.move(held, 39.1202, 117.20, NOW, NOW)
    found = index.within(39.12, 117.20, radius_m=500.0, now=NOW)
    assert sorted(n.entry.guard_id for n in found) == ["g0000", "g0001"]
    index.put(GuardEntry("g0000", "c2", frozenset(), 1.4, False, NOW + 60))  # suspended
    assert [n.entry.guard_id for n in index.within(39.12, 117.20, radius_m=500.0, now=NOW)] == [
        "g0001"
    ]
    index.remove("g0000")
    assert len(index) == 1 and sum(len(c.entries) for c in index._cells.values()) == 1
