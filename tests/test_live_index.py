"""The live index answers exactly what a scan of every guard would, touching only nearby cells."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.geo.distance import EARTH_RADIUS_M, METRES_PER_DEGREE_LAT, haversine_m
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
        d = haversine_m(lat, lon, entry.lat, entry.lon)
        if d <= radius_m:
            found.append((d, entry.guard_id))
    found.sort()
    return [(guard_id, d) for d, guard_id in found[:k]]


# Points and query in one small region: a 6 km box in a city (about 0.054° × 0.07° at 39°N),
# within 5.5 km of either pole (every longitude), astride the antimeridian in the band and
# in a polar cap, and astride 60°N where the band's cells meet the cap's.
SITES = {
    "city": (st.floats(39.10, 39.154), st.floats(117.17, 117.24)),
    "north pole": (st.floats(89.95, 90.0), st.floats(-180.0, 180.0)),
    "south pole": (st.floats(-90.0, -89.95), st.floats(-180.0, 180.0)),
    "antimeridian": (
        st.floats(-16.03, -15.97),
        st.one_of(st.floats(179.96, 180.0), st.floats(-180.0, -179.96)),
    ),
    "antimeridian in a cap": (
        st.floats(71.0, 71.05),
        st.one_of(st.floats(179.9, 180.0), st.floats(-180.0, -179.9)),
    ),
    "60°N": (st.floats(59.98, 60.02), st.floats(30.0, 30.08)),
}


@st.composite
def scenes(draw: st.DrawFn) -> tuple[list[tuple[float, float]], tuple[float, float]]:
    lats, lons = SITES[draw(st.sampled_from(sorted(SITES)))]
    coords = st.tuples(lats, lons)
    return draw(st.lists(coords, max_size=120)), draw(coords)


@settings(max_examples=600, deadline=None)
@given(
    scene=scenes(),
    k=st.integers(1, 15),
    radius_m=st.floats(1.0, 5000.0),
    cell_m=st.sampled_from([40.0, 150.0, 250.0, 1000.0]),
    engaged=st.sets(st.integers(0, 119), max_size=20),
    # Automatic, always the full scan, never it: both ways of answering are exact.
    scan_after=st.sampled_from([None, 0, 10**9]),
)
def test_nearest_equals_brute_force(scene, k, radius_m, cell_m, engaged, scan_after):
    points, query = scene
    index = _index(points, cell_m)
    index.scan_after_cells = scan_after
    for i in engaged:
        if i < len(points):
            index.get(f"g{i:04d}").activity = "offered"
    got = [
        (n.entry.guard_id, n.distance_m)
        for n in index.nearest(*query, k=k, radius_m=radius_m, now=NOW)
    ]
    _assert_same(got, _brute_force(index, *query, k, radius_m))


def _assert_same(got: list[tuple[str, float]], want: list[tuple[str, float]]) -> None:
    assert [g for g, _ in got] == [g for g, _ in want]
    for (_, d_got), (_, d_want) in zip(got, want, strict=True):
        assert math.isclose(d_got, d_want, rel_tol=1e-9, abs_tol=1e-6)


def _offset(lat: float, lon: float, north_m: float, east_m: float) -> tuple[float, float]:
    """The point north_m, east_m away along the great circle (valid at the poles too)."""
    d = math.hypot(north_m, east_m) / EARTH_RADIUS_M
    bearing = math.atan2(east_m, north_m)
    phi, lmb = math.radians(lat), math.radians(lon)
    phi2 = math.asin(math.sin(phi) * math.cos(d) + math.cos(phi) * math.sin(d) * math.cos(bearing))
    lmb2 = lmb + math.atan2(
        math.sin(bearing) * math.sin(d) * math.cos(phi),
        math.cos(d) - math.sin(phi) * math.sin(phi2),
    )
    lon2 = (math.degrees(lmb2) + 180.0) % 360.0 - 180.0
    return math.degrees(phi2), lon2


def _crowd(lat: float, lon: float, n: int = 3000, half_m: float = 4000.0) -> LiveIndex:
    """n guards spread evenly (on the ground) over a square around (lat, lon)."""
    rng = random.Random(7)
    return _index(
        [
            _offset(lat, lon, rng.uniform(-half_m, half_m), rng.uniform(-half_m, half_m))
            for _ in range(n)
        ],
        250.0,
    )


def _work(lat: float, lon: float, radius_m: float = 3000.0) -> int:
    index = _crowd(lat, lon)
    got = index.nearest(lat, lon, k=10, radius_m=radius_m, now=NOW)
    _assert_same(
        [(n.entry.guard_id, n.distance_m) for n in got],
        _brute_force(index, lat, lon, 10, radius_m),
    )
    return index.cells_visited


@pytest.mark.parametrize(
    "lat, lon",
    [
        (89.9, 0.0),
        (90.0, 0.0),
        (-90.0, 0.0),
        (-89.9, -73.0),
        (60.0, 30.0),
        (0.0, 180.0),
        (0.0, -180.0),
        (89.9, 180.0),
        (-16.0, 179.9999),
    ],
)
def test_a_search_anywhere_visits_about_as_many_cells_as_in_a_city(lat, lon):
    # Cells of a fixed longitude width once made a search at 89.9° walk millions of them
    # (15-20 s of a blocked event loop); now the cells are about cell_m wide everywhere. On
    # 60° a search walks both the band and a cap, with the band's cells half as wide there.
    city = _work(39.13, 117.20)
    assert city < 30
    assert _work(lat, lon) <= 4 * city


@pytest.mark.parametrize("lat, lon", [(90.0, 0.0), (-89.99, 45.0), (0.0, 180.0), (39.13, 117.2)])
def test_a_search_where_nobody_is_costs_at_most_one_pass_over_the_index(lat, lon):
    index = _crowd(10.0, 10.0, n=500)
    assert index.nearest(lat, lon, k=10, radius_m=50_000.0, now=NOW) == []
    assert index.cells_visited <= 2 * max(256, 2 * len(index._cells)) + len(index._cells)
    assert index.within(lat, lon, radius_m=1e9, now=NOW)  # the whole Earth: everyone


def test_a_guard_across_the_antimeridian_is_found_at_its_true_distance():
    index = _index([(25.84, -179.999), (25.84, 179.99)], 250.0)
    found = index.nearest(25.84, 179.999, k=1, radius_m=1000.0, now=NOW)
    assert [n.entry.guard_id for n in found] == ["g0000"]
    assert math.isclose(found[0].distance_m, haversine_m(25.84, 179.999, 25.84, -179.999))
    assert 195 < found[0].distance_m < 205
    # ±180° name the same meridian: the seam between the last column and the first.
    index = _index([(-16.0, 180.0), (-16.0, -180.0)], 40.0)
    for lon in (180.0, -180.0):
        found = index.nearest(-16.0, lon, k=5, radius_m=1.0, now=NOW)
        assert sorted(n.entry.guard_id for n in found) == ["g0000", "g0001"]
        assert all(n.distance_m < 1e-6 for n in found)  # sin(π) is 1.2e-16, not 0


def test_guards_round_a_pole_are_found_at_their_true_distance():
    points = [(90.0, 0.0), (89.999, 123.0), (89.999, -57.0), (-89.999, 0.0), (89.98, 10.0)]
    index = _index(points, 250.0)
    found = index.within(89.9999, -45.0, radius_m=500.0, now=NOW)
    assert [n.entry.guard_id for n in found] == ["g0000", "g0002", "g0001"]
    for n in found:
        assert math.isclose(
            n.distance_m, haversine_m(89.9999, -45.0, n.entry.lat, n.entry.lon), rel_tol=1e-9
        )
    assert math.isclose(found[0].distance_m, 0.0001 * METRES_PER_DEGREE_LAT, rel_tol=1e-6)


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
    assert index.nearest(39.12, 117.20, k=5, radius_m=math.nan, now=NOW) == []
    assert len(index.nearest(39.12, 117.20, k=5, radius_m=math.inf, now=NOW)) == 1


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
    assert len(index) == 1 and sum(len(c[1]) for c in index._cells.values()) == 1
