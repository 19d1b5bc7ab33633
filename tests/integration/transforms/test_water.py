"""GB 3838-2002 classification in SQL: targeted cases (TN ignored, TP river vs lake, DO at least,
pH range, worse than V, main pollutants and exceedance multiples) and the county shares."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import duckdb
import pytest

from transforms.water import compute_water_range

# The KPI models on the single file and on DuckLake-on-PostgreSQL (issue 10).
pytestmark = pytest.mark.backends("file", "postgres")

CST = timezone(timedelta(hours=8))
GOOD = {"ph": 7.5, "do_mgl": 8.0, "codmn_mgl": 1.5, "nh3n_mgl": 0.1, "tp_mgl": 0.01,
        "tn_mgl": 0.1, "water_temp_c": 18.0}  # fmt: skip


def readings(site: str, d: date, n: int = 6, **values: float) -> list[dict[str, object]]:
    base = datetime(d.year, d.month, d.day, 0, 0, tzinfo=CST)
    v = {**GOOD, **values}
    return [
        {"site_id": site, "observed_at": base + timedelta(hours=4 * i), "period_s": 14400, **v}
        for i in range(n)
    ]


def section(con: duckdb.DuckDBPyConnection, site: str, d: date, period: str = "day") -> dict:
    cur = con.execute(
        "select * from kpi.water_period_section where site_id = ? and as_of_date = ?"
        " and period = ?",
        [site, d, period],
    )
    cols = [c[0] for c in cur.description]
    row = cur.fetchone()
    assert row is not None
    return dict(zip(cols, row, strict=True))


def item_class(con: duckdb.DuckDBPyConnection, site: str, d: date, item: str) -> tuple:
    return con.execute(
        "select value, item_class, class_label, exceedance_multiple from kpi.water_period_item"
        " where site_id = ? and as_of_date = ? and period = 'day' and item_code = ?",
        [site, d, item],
    ).fetchone()


# A boundary table: the same SQL per case, so it runs on the file only (PostgreSQL setup costs
# ~7 s a case; every case passed there once, 2026-12-07); the other tests run on both.
@pytest.mark.backends("file")
@pytest.mark.parametrize(
    ("site", "values", "expected_class", "main"),
    [
        ("WS-WAT-02", {}, 1, None),
        # TN never sets a class, even far above every limit.
        ("WS-WAT-02", {"tn_mgl": 9.0}, 1, None),
        ("WS-WAT-03", {"tn_mgl": 9.0}, 1, None),
        # TP 0.15: Class III in a river (0.2), Class V in a lake/reservoir (0.2 is V's limit).
        ("WS-WAT-02", {"tp_mgl": 0.15}, 3, None),
        ("WS-WAT-03", {"tp_mgl": 0.15}, 5, "总磷（以P计）(2.00)"),
        # Boundaries: a value equal to a limit belongs to that class (at most / at least).
        ("WS-WAT-02", {"nh3n_mgl": 0.5}, 2, None),
        ("WS-WAT-02", {"nh3n_mgl": 0.501}, 3, None),
        ("WS-WAT-02", {"do_mgl": 6.0}, 2, None),
        ("WS-WAT-02", {"do_mgl": 5.99}, 3, None),
        ("WS-WAT-02", {"do_mgl": 2.0}, 5, "溶解氧"),
        ("WS-WAT-02", {"do_mgl": 1.99}, 6, "溶解氧"),
        ("WS-WAT-02", {"ph": 9.0}, 1, None),
        ("WS-WAT-02", {"ph": 9.01}, 6, "pH值"),
        ("WS-WAT-02", {"ph": 5.99}, 6, "pH值"),
        ("WS-WAT-02", {"codmn_mgl": 15.0}, 5, "高锰酸盐指数(1.50)"),
        # Worse than V: named with multiple value / Class III limit - 1.
        ("WS-WAT-02", {"nh3n_mgl": 2.5}, 6, "氨氮(1.50)"),
        # Several items worse than III: worst class first, then larger multiple; at most three.
        (
            "WS-WAT-02",
            {"nh3n_mgl": 1.2, "codmn_mgl": 16.0, "tp_mgl": 0.35, "do_mgl": 2.5},
            6,
            "高锰酸盐指数(1.67)、总磷（以P计）(0.75)、溶解氧",
        ),
    ],
)
def test_section_class(
    wh: duckdb.DuckDBPyConnection,
    insert_obs,
    day: date,
    site: str,
    values: dict[str, float],
    expected_class: int,
    main: str | None,
) -> None:
    insert_obs("water", readings(site, day, **values))
    compute_water_range(wh, day, day)
    s = section(wh, site, day)
    assert s["section_class"] == expected_class
    assert s["main_pollutants"] == main
    assert s["n_results"] == 6 and s["coverage_pct"] == 100.0


def test_item_details_and_mean(wh: duckdb.DuckDBPyConnection, insert_obs, day: date) -> None:
    rows = readings("WS-WAT-02", day, nh3n_mgl=1.0)
    rows[0]["nh3n_mgl"] = 2.2  # mean (2.2 + 5 x 1.0) / 6 = 1.2 -> Class IV, multiple 0.2
    rows[1]["is_valid"] = False  # invalid rows never count ...
    rows[1]["nh3n_mgl"] = 50.0
    insert_obs("water", rows)
    compute_water_range(wh, day, day)
    # ... so the mean is over 5 results: (2.2 + 4 x 1.0) / 5 = 1.24
    assert item_class(wh, "WS-WAT-02", day, "nh3n") == (1.24, 4, "IV", 0.24)
    # TN in a river has no limit: reported, not classified.
    value, cls, _, _ = item_class(wh, "WS-WAT-02", day, "tn")
    assert value == 0.1 and cls is None
    # DO and pH: no exceedance multiple (2011 method).
    assert item_class(wh, "WS-WAT-02", day, "do")[3] is None
    s = section(wh, "WS-WAT-02", day)
    assert (s["section_class"], s["grade_zh"], s["grade_en"]) == (4, "轻度污染", "lightly polluted")
    assert s["n_results"] == 5 and s["meets_target"] is False


def test_month_and_year_periods(wh: duckdb.DuckDBPyConnection, insert_obs) -> None:
    d1, d2, d3 = date(2026, 5, 31), date(2026, 6, 1), date(2026, 6, 2)
    insert_obs("water", readings("WS-WAT-02", d1, nh3n_mgl=1.4))
    insert_obs("water", readings("WS-WAT-02", d2, nh3n_mgl=0.2))
    insert_obs("water", readings("WS-WAT-02", d3, nh3n_mgl=0.6))
    compute_water_range(wh, d1, d3)
    assert section(wh, "WS-WAT-02", d3, "day")["section_class"] == 3
    # June to date: mean(0.2, 0.6) = 0.4 -> II; the year: mean(1.4, 0.2, 0.6) = 0.733 -> III.
    assert section(wh, "WS-WAT-02", d3, "month")["section_class"] == 2
    assert item_class(wh, "WS-WAT-02", d3, "nh3n")[0] == 0.6
    y = section(wh, "WS-WAT-02", d3, "year")
    assert y["section_class"] == 3 and y["n_results"] == 18
    # A later single-day run keeps the earlier days' sums (year-to-date still sees May).
    compute_water_range(wh, d3, d3)
    assert section(wh, "WS-WAT-02", d3, "year")["section_class"] == 3


def test_county_shares_and_drinking_compliance(
    wh: duckdb.DuckDBPyConnection, insert_obs, day: date
) -> None:
    insert_obs("water", readings("WS-WAT-01", day))  # I
    insert_obs("water", readings("WS-WAT-02", day, codmn_mgl=3.0))  # II
    insert_obs("water", readings("WS-WAT-04", day, codmn_mgl=5.0))  # III
    insert_obs("water", readings("WS-WAT-05", day, codmn_mgl=7.0))  # IV
    insert_obs("water", readings("WS-DWS-01", day, codmn_mgl=6.0))  # III: complies
    insert_obs("water", readings("WS-DWS-02", day, nh3n_mgl=1.01))  # IV: does not
    compute_water_range(wh, day, day)
    sections = wh.execute(
        "select n_sites, n_assessed, n_class_ii_or_better, class_ii_share_pct,"
        " n_class_iii_or_better, class_iii_share_pct, n_meets_target, target_attainment_pct"
        " from kpi.water_daily where local_date = ? and period = 'day' and scope = 'sections'",
        [day],
    ).fetchone()
    assert sections == (16, 4, 2, 50.0, 3, 75.0, 2, 50.0)
    drinking = wh.execute(
        "select n_sites, n_assessed, n_compliant, compliance_pct from kpi.water_daily"
        " where local_date = ? and period = 'day' and scope = 'drinking_sources'",
        [day],
    ).fetchone()
    assert drinking == (34, 2, 1, 50.0)
    s = section(wh, "WS-DWS-01", day)
    assert s["is_compliant"] is True and s["supplementary_measured"] is False


def test_shares_round_half_to_even(wh: duckdb.DuckDBPyConnection, insert_obs) -> None:
    # GB/T 8170 (四舍六入五成双), as the air good-days ratio: with 16 sections 13/16 = 81.25 %
    # publishes 81.2, 1/16 = 6.25 % -> 6.2 and 5/16 = 31.25 % -> 31.2 (not 81.3, 6.3, 31.3).
    d1, d2 = date(2026, 6, 1), date(2026, 6, 2)
    sites = [f"WS-WAT-{i:02d}" for i in range(1, 17)]
    for i, site in enumerate(sites):
        insert_obs("water", readings(site, d1, codmn_mgl=3.0 if i < 13 else 7.0))  # II / IV
        # d2: one Class I, four Class III, eleven Class IV
        codmn = 1.5 if i == 0 else 5.0 if i < 5 else 7.0
        insert_obs("water", readings(site, d2, codmn_mgl=codmn))
    compute_water_range(wh, d1, d2)
    rows = wh.execute(
        "select local_date, n_assessed, class_ii_share_pct, class_iii_share_pct,"
        " target_attainment_pct from kpi.water_daily"
        " where period = 'day' and scope = 'sections' order by local_date"
    ).fetchall()
    assert rows == [(d1, 16, 81.2, 81.2, 81.2), (d2, 16, 6.2, 31.2, 6.2)]
