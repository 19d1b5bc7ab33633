"""Real data: the published hourly values of Xingtai's four national stations (1077A-1080A),
2022-06-18 17:00 .. 2022-06-22 00:00, a high-ozone episode, through the production air chain on a
real DuckDB file, against the station day values the national platform published.

The fixture (tests/data/transforms/cnemc_xingtai_2022-06/, README.md there) holds the archive's
rows verbatim. The hourly value of each pollutant is its 1-h column; O3's is ``o3_24h`` (the
archive's ``o3`` is the highest 1-h value of the last 24 hours). The platform's day values are in
the row stamped 00:00 of the next day: ``*_24h`` are the day's 24-h means, ``o3_8h`` its daily
maximum 8-h mean and ``o3`` its highest 1-h value. 2022 days fall under HJ 633-2012.

Every computed value must equal the published one, except the documented list
``KNOWN_EXCEPTIONS``; both the chain and the independent reference implementation are checked.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Decimal

import duckdb
import pytest
from support import TEST_DATA
from support.air_helpers import insert_readings
from support.air_reference_impl import CST, Reading, compute, round_half_even

from common.migrate import migrate
from common.settings import Settings, get_settings
from transforms.air import compute_air_range
from warehouse import MIGRATIONS_DIR as WAREHOUSE_MIGRATIONS
from warehouse.db import connect
from warehouse.dims import load_dim_site

# The KPI models on the single file and on DuckLake-on-PostgreSQL (issue 10).
pytestmark = pytest.mark.backends("file", "postgres")

DATA = TEST_DATA / "transforms" / "cnemc_xingtai_2022-06"
STATIONS = ("1077A", "1078A", "1079A", "1080A")
DAYS = (date(2022, 6, 19), date(2022, 6, 20), date(2022, 6, 21))

# archive column of the hourly value -> reference-implementation pollutant
HOURLY_COLUMNS = {
    "pm2_5": "pm25",
    "pm10": "pm10",
    "so2": "so2",
    "no2": "no2",
    "co": "co",
    "o3_24h": "o3",  # quirk: the latest 1-h O3 (the archive's "o3" is a 24-h running maximum)
}


@dataclass(frozen=True)
class Indicator:
    column: str  # int.air_daily_station
    published: str  # archive column in the next day's 00:00 row
    reference: str  # air_reference_impl daily key
    quantum: Decimal  # published precision (standards.md 3: rounded half-even)


INDICATORS = {
    "PM2.5": Indicator("pm25_ugm3", "pm2_5_24h", "pm25", Decimal(1)),
    "PM10": Indicator("pm10_ugm3", "pm10_24h", "pm10", Decimal(1)),
    "SO2": Indicator("so2_ugm3", "so2_24h", "so2", Decimal(1)),
    "NO2": Indicator("no2_ugm3", "no2_24h", "no2", Decimal(1)),
    "CO": Indicator("co_mgm3", "co_24h", "co", Decimal("0.1")),
    "O3_8h": Indicator("o3_8h_max_ugm3", "o3_8h", "o3_8h", Decimal(1)),
    "O3_1h": Indicator("o3_1h_max_ugm3", "o3", "o3_1h", Decimal(1)),
}

# (station, day, indicator) -> (published, computed, why). Everything else must agree exactly.
KNOWN_EXCEPTIONS: dict[tuple[str, date, str], tuple[Decimal, Decimal | None, str]] = {
    ("1080A", date(2022, 6, 19), "PM10"): (
        Decimal(139),
        None,
        "1080A's 1-h PM10 of 13:00-18:00 is withheld from the public feed: 18 hourly values, "
        "fewer than the 20 GB 3095 Table 4 requires for a 24-h mean (standards.md 2: NA, not a "
        "mean of what little there is); the platform published 139, the mean of those 18",
    ),
    ("1080A", date(2022, 6, 19), "O3_8h"): (
        Decimal(229),
        Decimal(209),
        "the platform used hours it withheld from the public feed: 1080A's 1-h O3 of 17:00, "
        "18:00 and 19:00 is blank in every release while its 8-h moving mean kept moving "
        "(182 at 16:00, 195, 209, 221, 229 at 20:00); from the 21 released hours HJ 663 gives "
        "209 (11 valid windows, a valid day since 209 > 160)",
    ),
    ("1077A", date(2022, 6, 19), "CO"): (
        Decimal("0.7"),
        Decimal("0.6"),
        "the 24 hourly values average exactly 0.65 mg/m3; standards.md 3 rounds half-even (0.6), "
        "the platform rounded half up (0.7)",
    ),
}


def _hourly_rows() -> list[dict[str, str]]:
    with open(DATA / "hourly.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _readings(rows: list[dict[str, str]]) -> list[Reading]:
    out = []
    for r in rows:
        # timepoint = end of the hour, China time; hourly readings (period_s 3600)
        end = datetime.fromisoformat(r["timepoint"]).replace(tzinfo=CST)
        values: dict[str, float | None] = {
            p: (float(r[c]) if r[c] != "" else None) for c, p in HOURLY_COLUMNS.items()
        }
        out.append(Reading(r["stationcode"], end, 3600, values))
    return out


def _published(rows: list[dict[str, str]]) -> dict[tuple[str, date, str], Decimal | None]:
    """The platform's day values: the row stamped 00:00 of day + 1."""
    by_key = {(r["stationcode"], r["timepoint"]): r for r in rows}
    out: dict[tuple[str, date, str], Decimal | None] = {}
    for d in DAYS:
        stamp = date.fromordinal(d.toordinal() + 1).isoformat() + "T00:00:00"
        for s in STATIONS:
            row = by_key[(s, stamp)]
            for name, ind in INDICATORS.items():
                raw = row[ind.published]
                out[(s, d, name)] = Decimal(raw) if raw != "" else None
    return out


def _q(x: Decimal | None, quantum: Decimal) -> Decimal | None:
    return None if x is None else x.quantize(quantum, rounding=ROUND_HALF_EVEN)


@pytest.fixture
def xingtai(settings: Settings) -> Iterator[duckdb.DuckDBPyConnection]:
    """A real warehouse file whose dim_site is the fixture catalogue of the four stations."""
    s = get_settings(reference_dir=DATA, city="xingtai")
    con = connect(s, read_only=False)
    migrate(con, WAREHOUSE_MIGRATIONS)
    load_dim_site(con, s)
    yield con
    con.close()


def _compare(
    computed: dict[tuple[str, date, str], Decimal | None],
    published: dict[tuple[str, date, str], Decimal | None],
) -> tuple[int, list[tuple[tuple[str, date, str], Decimal | None, Decimal | None]]]:
    mismatches = [
        (k, published[k], computed[k]) for k in sorted(published) if computed[k] != published[k]
    ]
    return len(published), mismatches


def _report(label: str, total: int, mismatches: list) -> None:
    agree = total - len(mismatches)
    print(f"\n{label}: {agree}/{total} station-day values agree ({100 * agree / total:.1f}%)")
    for (s, d, name), pub, got in mismatches:
        print(f"  {s} {d} {name}: published {pub}, computed {got}")


def test_the_chain_reproduces_the_published_xingtai_station_days(
    xingtai: duckdb.DuckDBPyConnection,
) -> None:
    rows = _hourly_rows()
    assert len(rows) == 316  # 80 hours x 4 stations, minus 1080A's absent 2022-06-18 17:00-20:00
    insert_readings(xingtai, _readings(rows))
    compute_air_range(xingtai, DAYS[0], DAYS[-1], as_of=datetime(2022, 7, 1, tzinfo=UTC))

    got = {
        (r[0], r[1]): r[2:]
        for r in xingtai.execute(
            "select site_id, local_date, rule_set, pm25_ugm3, pm10_ugm3, so2_ugm3, no2_ugm3,"
            " co_mgm3, o3_8h_max_ugm3, o3_1h_max_ugm3, count_o3_8h_windows"
            " from int.air_daily_station where local_date between $a and $b",
            {"a": DAYS[0], "b": DAYS[-1]},
        ).fetchall()
    }
    assert set(got) == {(s, d) for s in STATIONS for d in DAYS}
    assert {v[0] for v in got.values()} == {"HJ633-2012"}
    # every day has all 17 HJ 663 windows except 1080A on 06-19: its O3 of 17:00-19:00 is
    # withheld, so the windows ending 19:00-24:00 have 5 hours (< 6) and 11 windows remain;
    # fewer than 14, the day is still valid because its highest window (209) exceeds 160
    windows = {k: v[8] for k, v in got.items()}
    assert windows.pop(("1080A", DAYS[0])) == 11
    assert got[("1080A", DAYS[0])][6] is not None
    assert set(windows.values()) == {17}

    order = ("PM2.5", "PM10", "SO2", "NO2", "CO", "O3_8h", "O3_1h")
    computed = {
        (s, d, name): _q(got[(s, d)][1 + i], INDICATORS[name].quantum)
        for (s, d) in got
        for i, name in enumerate(order)
    }
    published = _published(rows)
    total, mismatches = _compare(computed, published)
    _report("production chain (HJ 663 O3 8h, half-even)", total, mismatches)

    assert total == 84
    found = {k: (pub, comp) for k, pub, comp in mismatches}
    assert found == {k: (v[0], v[1]) for k, v in KNOWN_EXCEPTIONS.items()}


def test_the_reference_implementation_agrees_on_the_same_real_data() -> None:
    rows = _hourly_rows()
    res = compute(_readings(rows), dict.fromkeys(STATIONS, True), list(DAYS))
    computed: dict[tuple[str, date, str], Decimal | None] = {}
    for s in STATIONS:
        for d in DAYS:
            day = res.daily[(s, d)]
            for name, ind in INDICATORS.items():
                x = day[ind.reference]
                if x is None:
                    computed[(s, d, name)] = None
                    continue
                r = round_half_even(x, 1 if ind.quantum == Decimal("0.1") else 0)  # exact
                computed[(s, d, name)] = _q(Decimal(r.numerator) / r.denominator, ind.quantum)
    total, mismatches = _compare(computed, _published(rows))
    _report("reference implementation", total, mismatches)
    assert {k: (pub, comp) for k, pub, comp in mismatches} == {
        k: (v[0], v[1]) for k, v in KNOWN_EXCEPTIONS.items()
    }


def test_the_withheld_hours_and_the_half_way_co_are_what_the_exceptions_say() -> None:
    """The two exceptions are facts of the published data, not of the computation."""
    rows = {(r["stationcode"], r["timepoint"]): r for r in _hourly_rows()}
    # 1080A, 2022-06-19: the 1-h O3 of 17:00-19:00 is withheld, the running 8-h mean moves on
    o3 = [rows[("1080A", f"2022-06-19T{h:02d}:00:00")]["o3_24h"] for h in (17, 18, 19)]
    assert o3 == ["", "", ""]
    moving = [rows[("1080A", f"2022-06-19T{h:02d}:00:00")]["o3_8h_24h"] for h in range(16, 21)]
    assert moving == ["182", "195", "209", "221", "229"]
    assert rows[("1080A", "2022-06-20T00:00:00")]["o3_8h"] == "229"  # the published day max
    # 1080A, 2022-06-19: 18 hourly PM10 values (13:00-18:00 withheld) whose mean rounds to 139
    pm10 = [rows[("1080A", f"2022-06-19T{h:02d}:00:00")]["pm10"] for h in range(1, 24)]
    pm10.append(rows[("1080A", "2022-06-20T00:00:00")]["pm10"])
    present = [Decimal(v) for v in pm10 if v != ""]
    assert len(present) == 18
    assert _q(sum(present) / len(present), Decimal(1)) == Decimal(139)
    # 1077A, 2022-06-19: 24 hourly CO values whose mean is exactly half-way
    co = [Decimal(rows[("1077A", f"2022-06-19T{h:02d}:00:00")]["co"]) for h in range(1, 24)] + [
        Decimal(rows[("1077A", "2022-06-20T00:00:00")]["co"])
    ]
    assert len(co) == 24
    assert sum(co) / 24 == Decimal("0.65")


def test_hourly_aqi_is_the_published_real_time_aqi_hour_for_hour(
    xingtai: duckdb.DuckDBPyConnection,
) -> None:
    # Issue 9 item 5: the platform's real-time station AQI is the highest IAQI of the SO2, NO2,
    # CO and O3 1-h values and the PM 1-h values on the 24-h breakpoints. Counting the O3 8-h
    # moving mean too would agree on 136 of the 299 hours only, the PM 24-h moving means on 46.
    rows = _hourly_rows()
    insert_readings(xingtai, _readings(rows))
    compute_air_range(xingtai, DAYS[0], DAYS[-1], as_of=datetime(2022, 7, 1, tzinfo=UTC))
    got = {
        (site, stamp.isoformat()): aqi
        for site, stamp, aqi in xingtai.execute(
            "select scope, period_end_local, aqi from int.air_aqi where grain = 'hour'"
            " and scope <> 'county'"
        ).fetchall()
    }
    # the hours of the computed days (D 01:00 .. D+1 00:00) that the platform published
    published = {
        (r["stationcode"], r["timepoint"]): int(r["aqi"])
        for r in rows
        if r["aqi"] not in ("", "—") and (r["stationcode"], r["timepoint"]) in got
    }
    agree = sum(got[k] == v for k, v in published.items())
    print(f"\nhourly AQI: {agree}/{len(published)} station hours agree")
    assert len(published) >= 180  # 3 days x 24 hours x 4 stations, less what was withheld
    assert agree == len(published), [(k, v, got[k]) for k, v in published.items() if got[k] != v]
