"""Waterlogging events in SQL against an independent Python state machine, on randomized minute
series: storms around the thresholds, short and long dry dips, gaps in the series, a second
device at some points, invalid and null readings, events across the edges of the range."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone

import duckdb
import pytest

from transforms.waterlogging import compute_waterlogging_range

CST = timezone(timedelta(hours=8))
POINTS = ("WS-WLG-01", "WS-WLG-02", "WS-WLG-08")
END_BELOW = timedelta(minutes=10)  # reference/standards/waterlogging_rules.csv
LOOKAHEAD_DAYS = 3
LEVELS = {1: "waterlogging", 2: "closure", 3: "danger"}


@dataclass
class Event:
    start: datetime
    last_wet: datetime
    peak: float
    peak_at: datetime
    n_wet: int
    end: datetime | None = None


def reference_events(readings: list[tuple[datetime, float]], threshold: float) -> list[Event]:
    """Walk one point's series (deepest reading per instant, in time order): a wet reading opens
    an event; the first dry reading after a wet one starts a dry spell; the event ends at that
    reading once the series shows the spell lasting END_BELOW (a reading that late, wet or dry)."""
    out: list[Event] = []
    cur: Event | None = None
    dry_since: datetime | None = None
    for t, depth in readings:
        if cur is not None and dry_since is not None and t - dry_since >= END_BELOW:
            cur.end = dry_since
            out.append(cur)
            cur, dry_since = None, None
        if depth > threshold:
            if cur is None:
                cur = Event(t, t, depth, t, 0)
            cur.last_wet, cur.n_wet, dry_since = t, cur.n_wet + 1, None
            if depth > cur.peak:
                cur.peak, cur.peak_at = depth, t
        elif cur is not None and dry_since is None:
            dry_since = t
    if cur is not None:
        out.append(cur)  # still open: ongoing
    return out


def generate(rng: random.Random, first: datetime, days: int) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for site in POINTS:
        t = first
        storm_left = 0
        while t < first + timedelta(days=days):
            if rng.random() < 0.002:
                t += timedelta(minutes=rng.randint(5, 40))  # a gap in the series
                continue
            if storm_left == 0 and rng.random() < 0.004:
                storm_left = rng.randint(5, 240)
            if storm_left > 0:
                storm_left -= 1
                dip = rng.random() < 0.08  # a short or long dry dip inside the storm
                depth = rng.uniform(5, 15) if dip else rng.choice([15.0, rng.uniform(14, 48)])
            else:
                depth = rng.choice([15.0, rng.uniform(0, 14)])
            depth = round(depth, 1)
            valid = rng.random() > 0.02
            rows.append(
                {
                    "site_id": site,
                    "device_id": f"DEV-{site}",
                    "observed_at": t,
                    "depth_cm": None if rng.random() < 0.005 else depth,
                    "is_valid": valid,
                }
            )
            if not valid and rng.random() < 0.5:
                rows[-1]["depth_cm"] = 60.0  # an invalid deep reading must not count
            if rng.random() < 0.03:  # a second device at the same instant
                rows.append(
                    {
                        "site_id": site,
                        "device_id": f"DEV2-{site}",
                        "observed_at": t,
                        "depth_cm": round(rng.uniform(0, 45), 1),
                        "is_valid": True,
                    }
                )
            t += timedelta(minutes=1)
    return rows


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_events_match_reference(wh: duckdb.DuckDBPyConnection, insert_obs, seed: int) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(seed)
    first = datetime(2026, 6, 8, tzinfo=CST)
    rows = generate(rng, first, 7)
    insert_obs("waterlogging", rows)
    start, end = date(2026, 6, 10), date(2026, 6, 11)
    compute_waterlogging_range(wh, start, end)

    thresholds = dict(
        wh.execute(
            "select site_id, waterlogging_cm from core.dim_site where kind = 'waterlogging_point'"
        ).fetchall()
    )
    limits = dict(
        (s, (c, d))
        for s, c, d in wh.execute(
            "select site_id, closure_cm, danger_cm from core.dim_site"
            " where kind = 'waterlogging_point'"
        ).fetchall()
    )
    want = []
    for site in POINTS:
        # The documented read window: the day before the range to LOOKAHEAD_DAYS after it.
        lo, hi = start - timedelta(days=1), end + timedelta(days=LOOKAHEAD_DAYS)
        deepest: dict[datetime, float] = {}
        for r in rows:
            t: datetime = r["observed_at"]  # type: ignore[assignment]
            if r["site_id"] != site or not r["is_valid"] or r["depth_cm"] is None:
                continue
            if not lo <= t.astimezone(CST).date() <= hi:
                continue
            deepest[t] = max(deepest.get(t, float("-inf")), float(r["depth_cm"]))  # type: ignore[arg-type]
        series = sorted(deepest.items())
        closure, danger = limits[site]
        for e in reference_events(series, float(thresholds[site])):
            day = e.start.astimezone(CST).date()
            if not start <= day <= end:
                continue
            level = 3 if e.peak > danger else 2 if e.peak > closure else 1
            stop = e.end if e.end is not None else e.last_wet
            want.append(
                (
                    site,
                    day,
                    e.start,
                    e.end,
                    "closed" if e.end is not None else "ongoing",
                    round((stop - e.start).total_seconds() / 60, 2),
                    e.peak,
                    e.peak_at,
                    round((e.end - e.peak_at).total_seconds() / 60, 2) if e.end else None,
                    LEVELS[level],
                    e.n_wet,
                    e.last_wet,
                )
            )
    got = wh.execute(
        "select site_id, local_date, event_start, event_end, status, duration_min,"
        " peak_depth_cm, peak_at, recession_min, max_level, n_wet_readings, last_wet_at"
        " from kpi.waterlogging_events order by site_id, event_start"
    ).fetchall()
    assert len(want) >= 5, "the random series should produce events"
    assert [_norm(r) for r in got] == [_norm(r) for r in sorted(want, key=lambda r: r[:3])]


def _norm(row: tuple[object, ...]) -> tuple[object, ...]:
    """Instants compared as UTC, numbers as floats."""
    out: list[object] = []
    for v in row:
        if isinstance(v, datetime):
            out.append(v.astimezone(UTC))
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out.append(round(float(v), 4))
        else:
            out.append(v)
    return tuple(out)
