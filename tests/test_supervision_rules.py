"""The pure decisions behind supervision: percentiles, report periods, expiry warnings and
recognition points (no database, no server)."""

from __future__ import annotations

import datetime as dt
import math
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.errors import Unprocessable
from app.supervision import points
from app.supervision.expiry import due_threshold, licence_state
from app.supervision.period import Period, period_of

SHANGHAI = ZoneInfo("Asia/Shanghai")


def nearest_rank(sorted_values: list[int], percent: int) -> int | None:
    """The definition the reports follow: the value at rank ceil(percent/100 · n), 1-based."""
    n = len(sorted_values)
    return sorted_values[math.ceil(percent * n / 100) - 1] if n else None


NOW = dt.datetime(2026, 3, 1, 17, 0, tzinfo=dt.UTC)  # 01:00 on 2 March in Shanghai


def test_nearest_rank_takes_the_value_at_rank_ceil_p_n() -> None:
    assert nearest_rank([10, 20, 30, 40], 50) == 20
    assert nearest_rank([10, 20, 30, 40], 90) == 40
    assert nearest_rank([7], 50) == 7 and nearest_rank([7], 90) == 7
    assert nearest_rank(list(range(1, 11)), 90) == 9
    assert nearest_rank([], 50) is None


@given(st.lists(st.integers(-1000, 1000), min_size=1, max_size=200))
def test_the_sql_ranks_match_nearest_rank(values: list[int]) -> None:
    """app/supervision/stats.percentiles picks ranks (n+1)//2 and (9n+9)//10 on SQLite
    (PostgreSQL's percentile_disc is nearest rank by definition): the same ranks."""
    ordered = sorted(values)
    n = len(ordered)
    assert ordered[(n + 1) // 2 - 1] == nearest_rank(ordered, 50)
    assert ordered[(9 * n + 9) // 10 - 1] == nearest_rank(ordered, 90)


def test_a_period_is_whole_local_days_and_defaults_to_the_last_thirty() -> None:
    period = period_of(None, None, now=NOW, zone=SHANGHAI)
    assert (period.first, period.last) == (dt.date(2026, 2, 1), dt.date(2026, 3, 2))
    day = period_of(dt.date(2026, 3, 1), dt.date(2026, 3, 1), now=NOW, zone=SHANGHAI)
    assert day.start == dt.datetime(2026, 2, 28, 16, 0, tzinfo=dt.UTC)
    assert day.end == dt.datetime(2026, 3, 1, 16, 0, tzinfo=dt.UTC)
    assert period_of(dt.date(2026, 1, 1), None, now=NOW, zone=SHANGHAI).last == dt.date(2026, 3, 2)


def test_a_dst_day_is_23_hours_long() -> None:
    berlin = Period(dt.date(2026, 3, 29), dt.date(2026, 3, 29), ZoneInfo("Europe/Berlin"))
    assert berlin.end - berlin.start == dt.timedelta(hours=23)


@pytest.mark.parametrize(
    ("first", "last", "field"),
    [
        (dt.date(2026, 3, 2), dt.date(2026, 3, 1), "from"),
        (dt.date(2020, 1, 1), dt.date(2026, 1, 1), "to"),
        (dt.date(1, 1, 1), None, "from"),
        (None, dt.date(9999, 12, 31), "to"),
    ],
)
def test_bad_periods_name_the_field(
    first: dt.date | None, last: dt.date | None, field: str
) -> None:
    with pytest.raises(Unprocessable) as refused:
        period_of(first, last, now=NOW, zone=SHANGHAI)
    assert refused.value.message.startswith(f"{field}:")


def test_expiry_warns_at_the_most_urgent_threshold_reached() -> None:
    assert [due_threshold(d) for d in (31, 30, 12, 7, 5, 0, -3)] == [None, 30, 30, 7, 7, 0, 0]
    assert [licence_state(d) for d in (31, 30, 0, -1)] == [
        "valid",
        "expiring",
        "expiring",
        "expired",
    ]


def test_only_the_first_guard_on_scene_scores() -> None:
    assert points.on_scene("g", "i", 1, first=True) == [points.Award("g", "first_on_scene_p1", "i")]
    assert points.on_scene("g", "i", 3, first=True)[0].rule == "first_on_scene"
    assert points.on_scene("g", "i", 1, first=False) == []


def test_a_no_show_is_the_guards_own_doing_after_accepting() -> None:
    def no_show(**facts: bool) -> bool:
        return bool(points.stood_down("g", "i", **facts))

    assert no_show(accepted_offer=True, reached_scene=False, own_doing=True)
    assert not no_show(accepted_offer=True, reached_scene=True, own_doing=True)
    assert not no_show(accepted_offer=True, reached_scene=False, own_doing=False)
    assert not no_show(accepted_offer=False, reached_scene=False, own_doing=True)


def test_intel_scores_for_useful_verdicts_only_and_handovers_for_everyone_on_scene() -> None:
    assert points.intel_verdict("g", "int_1", "acted_on")[0].ref == "int_1"
    assert points.intel_verdict("g", "int_1", "not_useful") == []
    assert [a.guard_id for a in points.handover("i", ["a", "b"])] == ["a", "b"]
    assert points.feedback("complaint", "g", "fbk_1", "rude")[0].reason.endswith(": rude")


def test_the_points_table_merges_overrides_and_refuses_unknown_rules() -> None:
    table = points.points_table({"no_show": -25})
    assert table["no_show"] == -25 and table["commendation"] == 20
    with pytest.raises(ValueError, match="unknown points rules"):
        points.points_table({"bravery": 100})
