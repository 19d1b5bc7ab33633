"""Waterlogging events from minute depth series: start/end with the 10-minute rule, peak,
recession time, attribution across midnight, ongoing events, daily rollups."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import duckdb
import pytest

from transforms.waterlogging import compute_waterlogging_range, ongoing_event_days

# The KPI models on the single file and on DuckLake-on-PostgreSQL (issue 10).
pytestmark = pytest.mark.backends("file", "postgres")

CST = timezone(timedelta(hours=8))
P = "WS-WLG-01"  # gaotang, thresholds 15 / 25 / 40 cm


def series(start: datetime, depths: list[float], site: str = P) -> list[dict[str, object]]:
    return [
        {"site_id": site, "observed_at": start + timedelta(minutes=i), "depth_cm": d}
        for i, d in enumerate(depths)
    ]


def at(d: date, h: int, m: int = 0) -> datetime:
    return datetime(d.year, d.month, d.day, h, m, tzinfo=CST)


def events(con: duckdb.DuckDBPyConnection, site: str = P) -> list[tuple]:
    return con.execute(
        "select local_date, event_start, event_end, status, duration_min, peak_depth_cm, peak_at,"
        " recession_min, max_level from kpi.waterlogging_events where site_id = ?"
        " order by event_start",
        [site],
    ).fetchall()


def test_event_with_short_dry_gap_is_one_event(wh, insert_obs, day: date) -> None:
    depths = [10.0] * 10  # 09:50-09:59 dry
    depths += [16, 20, 25, 28, 30, 29, 27, 22, 18, 16]  # 10:00-10:09 wet, peak 30 at 10:04
    depths += [14.0] * 5  # 10:10-10:14 dry: only 5 minutes
    depths += [20.0] * 3  # 10:15-10:17 wet again: same event
    depths += [15.0] * 30  # 10:18 on: exactly 15 is not above the threshold -> dry
    insert_obs("waterlogging", series(at(day, 9, 50), depths))
    compute_waterlogging_range(wh, day, day)
    [(d, start, end, status, dur, peak, peak_at, rec, level)] = events(wh)
    assert (d, start, end, status) == (day, at(day, 10, 0), at(day, 10, 18), "closed")
    assert (dur, peak, peak_at, rec, level) == (18.0, 30.0, at(day, 10, 4), 14.0, "closure")


def test_dry_spell_of_ten_minutes_ends_the_event(wh, insert_obs, day: date) -> None:
    # wet 10:00-10:02, dry from 10:03; wet again at 10:13 = 10 minutes later -> a new event.
    depths = [20.0] * 3 + [5.0] * 10 + [45.0] * 2 + [5.0] * 12
    insert_obs("waterlogging", series(at(day, 10, 0), depths))
    # Second point: wet again 9 minutes after the first dry reading -> one event.
    depths2 = [20.0] * 3 + [5.0] * 9 + [20.0] * 2 + [5.0] * 12
    insert_obs("waterlogging", series(at(day, 10, 0), depths2, site="WS-WLG-08"))
    compute_waterlogging_range(wh, day, day)
    ev = events(wh)
    assert [(e[1], e[2], e[8]) for e in ev] == [
        (at(day, 10, 0), at(day, 10, 3), "waterlogging"),
        (at(day, 10, 13), at(day, 10, 15), "danger"),
    ]
    ev2 = events(wh, "WS-WLG-08")
    assert [(e[1], e[2]) for e in ev2] == [(at(day, 10, 0), at(day, 10, 14))]
    daily = wh.execute(
        "select scope, n_points_with_events, n_events, n_closure_events, n_danger_events,"
        " waterlogged_hours, max_depth_cm, max_level from kpi.waterlogging_daily"
        " where local_date = ? and scope in ('county', 'gaotang', 'longmen', 'zaoyang')"
        " order by scope",
        [day],
    ).fetchall()
    assert daily == [
        ("county", 2, 3, 1, 1, round((3 + 2 + 14) / 60, 2), 45.0, "danger"),
        ("gaotang", 1, 2, 1, 1, round(5 / 60, 2), 45.0, "danger"),
        ("longmen", 1, 1, 0, 0, round(14 / 60, 2), 20.0, "waterlogging"),
        ("zaoyang", 0, 0, 0, 0, 0.0, None, None),
    ]


def test_event_across_midnight_belongs_to_its_start_day(wh, insert_obs, day: date) -> None:
    nxt = day + timedelta(days=1)
    depths = [10.0] * 5 + [22.0] * 40 + [3.0] * 15  # 23:45 start, wet 23:50-00:29, dry 00:30
    insert_obs("waterlogging", series(at(day, 23, 45), depths))
    compute_waterlogging_range(wh, day, nxt)
    [(d, start, end, status, dur, *_)] = events(wh)
    assert (d, start, end, status, dur) == (day, at(day, 23, 50), at(nxt, 0, 30), "closed", 40.0)
    counts = dict(
        wh.execute(
            "select local_date, n_events from kpi.waterlogging_daily where scope = 'county'"
        ).fetchall()
    )
    assert counts == {day: 1, nxt: 0}
    # Computing only the next day never invents an event from the readings after midnight.
    compute_waterlogging_range(wh, nxt, nxt)
    assert len(events(wh)) == 1


def test_event_starting_with_the_reading_stamped_midnight_belongs_to_the_day_before(
    wh, insert_obs, day: date
) -> None:
    # Issue 9 item 6: the reading stamped 00:00:00 covers 23:59-24:00 of the day before.
    nxt = day + timedelta(days=1)
    depths = [10.0] * 5 + [22.0] * 20 + [3.0] * 15  # wet from 00:00 (stamp), dry at 00:20
    insert_obs("waterlogging", series(at(day, 23, 55), depths))
    compute_waterlogging_range(wh, day, nxt)
    [(d, start, *_)] = events(wh)
    assert (d, start) == (day, at(nxt, 0, 0))


def test_ongoing_event_closes_when_later_data_arrives(wh, insert_obs, day: date) -> None:
    insert_obs("waterlogging", series(at(day, 22, 0), [30.0] * 60 + [10.0] * 5))
    compute_waterlogging_range(wh, day, day)
    [(_, _, end, status, dur, *_)] = events(wh)
    # Dry for only 5 minutes at the end of the data: still ongoing, duration to the last wet one.
    assert (end, status, dur) == (None, "ongoing", 59.0)
    assert ongoing_event_days(wh, day - timedelta(days=7), day) == [day]
    insert_obs("waterlogging", series(at(day, 23, 5), [10.0] * 10))
    compute_waterlogging_range(wh, day, day)
    [(_, _, end, status, dur, _, _, rec, _)] = events(wh)
    assert (end, status, dur, rec) == (at(day, 23, 0), "closed", 60.0, 60.0)
    assert ongoing_event_days(wh, day - timedelta(days=7), day) == []


def test_invalid_readings_are_ignored(wh, insert_obs, day: date) -> None:
    rows = series(at(day, 8, 0), [5.0] * 30)
    for r in rows[10:15]:
        r["depth_cm"], r["is_valid"] = 80.0, False
    insert_obs("waterlogging", rows)
    compute_waterlogging_range(wh, day, day)
    assert events(wh) == []
    assert wh.execute(
        "select max_depth_cm from kpi.waterlogging_daily where scope = 'county'"
    ).fetchone() == (5.0,)
