"""The simulator's generator: determinism, outcomes the parser agrees with, realism."""

from __future__ import annotations

import json
import statistics
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from common.catalogue import Catalogue
from ingestion.contract import REASONS, ContractParser
from simulator.sim_model import Climate
from simulator.simulate import (
    MALFORMED_REASONS,
    Faults,
    SimMessage,
    count_outcomes,
    generate,
    read_jsonl,
    write_jsonl,
)

TZ = ZoneInfo("Asia/Shanghai")
LATER = datetime(2030, 1, 1, tzinfo=UTC)  # parse time after every simulated reading


def parse_outcomes(parser: ContractParser, m: SimMessage) -> list[str]:
    pm = parser.parse(m.topic, m.payload, LATER)
    by_index: dict[int, str] = {}
    for r in pm.rejections:
        by_index[r.row["reading_index"] or 0] = r.reason
    out = []
    accepted = iter(pm.readings)
    for i in range(pm.records):
        if i in by_index:
            out.append(by_index[i])
        else:
            next(accepted)
            out.append("accept")
    return out


@pytest.fixture(scope="module")
def parser(catalogue: Catalogue) -> ContractParser:
    return ContractParser(catalogue, city="wushan")


@pytest.fixture(scope="module")
def heavy_day(catalogue: Catalogue) -> list[SimMessage]:
    # A flood-season weekday, every feed, every fault at its heavy rate.
    return list(generate(catalogue, date(2026, 7, 14), 1, seed=7, faults="heavy"))


def test_same_seed_same_bytes_other_seed_other_values(catalogue: Catalogue) -> None:
    a = [m.payload for m in generate(catalogue, date(2026, 3, 2), 1, 3, "default", ["air"])]
    b = [m.payload for m in generate(catalogue, date(2026, 3, 2), 1, 3, "default", ["air"])]
    c = [m.payload for m in generate(catalogue, date(2026, 3, 2), 1, 4, "default", ["air"])]
    assert a == b
    assert a != c


def test_clean_values_do_not_depend_on_faults_or_feed_selection(catalogue: Catalogue) -> None:
    def readings(faults: str, feeds: list[str]) -> dict[tuple[str, int], bytes]:
        out = {}
        for m in generate(catalogue, date(2026, 1, 20), 1, 5, faults, feeds):
            if m.kind == "reading" and m.topic.split("/")[2] == "air":
                out[(m.topic, json.loads(m.payload)["seq"])] = m.payload
        return out

    clean = readings("none", ["air"])
    faulty = readings("heavy", ["air", "water"])
    common = clean.keys() & faulty.keys()
    assert len(common) > 0.5 * len(clean)
    assert all(clean[k] == faulty[k] for k in common)


def test_clean_day_volume_and_seq(catalogue: Catalogue, parser: ContractParser) -> None:
    msgs = list(generate(catalogue, date(2026, 5, 4), 1, seed=1, faults="none"))
    per_feed = Counter(m.topic.split("/")[2] for m in msgs)
    expected = Counter()
    for s in catalogue.sites.values():
        lanes = int(s.get("lanes") or 1) if s.feed == "traffic" else 1  # type: ignore[call-overload]
        expected[s.feed] += len(s.device_ids) * lanes * 86400 // s.period_s
    assert per_feed == expected
    seqs: dict[tuple[str, str], list[int]] = defaultdict(list)
    days = set()
    for m in msgs:
        assert m.kind == "reading" and m.outcomes == ("accept",)
        pm = parser.parse(m.topic, m.payload, LATER)
        assert pm.rejections == [], pm.rejections[0].row["detail"]
        (r,) = pm.readings
        seqs[(r.row["site_id"], r.row["device_id"])].append(r.row["seq"])
        days.add(r.local_date)
    assert days == {date(2026, 5, 4)}
    for s in seqs.values():  # one counter per device, +1 per reading (traffic lanes share it)
        assert s == list(range(1, len(s) + 1))


def test_heavy_faults_outcomes_match_the_parser(
    heavy_day: list[SimMessage], parser: ContractParser
) -> None:
    kinds = Counter(m.kind for m in heavy_day)
    for kind in ("batch", "duplicate", "out_of_order", "malformed", "unit_variant", "stuck"):
        assert kinds[kind] > 0, kind
    reasons_seen = set()
    for m in heavy_day:
        got = parse_outcomes(parser, m)
        # The parser does not deduplicate: a re-delivery parses like its original.
        want = ["accept" if o == "duplicate" else o for o in m.outcomes]
        assert got == want, (m.kind, m.topic, m.payload[:300])
        reasons_seen.update(o for o in m.outcomes if o in REASONS)
        assert m.expected in (*m.outcomes, "mixed")
    assert reasons_seen == set(MALFORMED_REASONS)
    counts = count_outcomes(heavy_day)
    assert sum(counts.values()) == sum(m.records for m in heavy_day)
    assert counts["duplicate"] == sum(m.records for m in heavy_day if m.kind == "duplicate")
    # A batch with a bad reading among good ones.
    assert any(m.expected == "mixed" for m in heavy_day)


def test_every_message_is_inside_the_ingest_subscription(heavy_day: list[SimMessage]) -> None:
    for m in heavy_day:
        parts = m.topic.split("/")
        assert len(parts) == 4 and parts[:2] == ["city", "wushan"], m.topic


def test_duplicates_are_exact_redeliveries(heavy_day: list[SimMessage]) -> None:
    first: dict[tuple[str, bytes], int] = {}
    for i, m in enumerate(heavy_day):
        if m.kind == "duplicate":
            assert (m.topic, m.payload) in first, "a duplicate must follow its original"
        else:
            first.setdefault((m.topic, m.payload), i)


def test_backlog_batches_are_bounded_arrays(heavy_day: list[SimMessage]) -> None:
    batches = [m for m in heavy_day if m.kind == "batch"]
    assert batches
    for m in batches:
        doc = json.loads(m.payload)
        assert isinstance(doc, list) and 1 <= len(doc) <= 100
        assert len(doc) == m.records


def test_send_time_order_and_out_of_order_arrivals(heavy_day: list[SimMessage]) -> None:
    sent = [m.sent_at for m in heavy_day]
    assert sent == sorted(sent)
    late = [m for m in heavy_day if m.kind == "out_of_order"]
    assert late
    for m in late:
        observed = datetime.fromisoformat(json.loads(m.payload)["observed_at"])
        assert m.sent_at > observed


def test_unit_variants_convert_back(parser: ContractParser, heavy_day: list[SimMessage]) -> None:
    variants = [m for m in heavy_day if m.kind == "unit_variant"]
    units = Counter(u for m in variants for u in json.loads(m.payload)["units"].values())
    assert {"mg/m3", "m/s", "fraction"} <= set(units)
    for m in variants[:200]:
        doc = json.loads(m.payload)
        (r,) = parser.parse(m.topic, m.payload, LATER).readings
        if doc["units"].get("pm25") == "mg/m3":
            assert r.row["pm25_ugm3"] == pytest.approx(doc["values"]["pm25"] * 1000)
            assert r.row["pm25_ugm3"] == round(r.row["pm25_ugm3"], 1)  # back to the model's 0.1


def test_fault_presets_and_overrides() -> None:
    assert Faults.preset("none") == Faults()
    f = Faults.preset("default").with_overrides(["duplicate=0.5", "gap=0"])
    assert f.duplicate == 0.5 and f.gap == 0 and f.malformed == Faults.preset("default").malformed
    with pytest.raises(ValueError):
        Faults.preset("nope")
    with pytest.raises(ValueError):
        Faults().with_overrides(["teleport=0.1"])
    with pytest.raises(ValueError):
        Faults().with_overrides(["duplicate=2"])


def test_jsonl_round_trip(tmp_path: Path, heavy_day: list[SimMessage]) -> None:
    sample = [m for m in heavy_day if m.kind == "malformed"][:60] + heavy_day[:50]
    path = tmp_path / "sim.jsonl"
    assert write_jsonl(sample, path) == len(sample)
    assert list(read_jsonl(path)) == sample


def test_cli_writes_jsonl(tmp_path: Path, settings: object) -> None:
    from citypipe.cli import main

    out = tmp_path / "water.jsonl"
    rc = main(
        [
            "simulate",
            "--start",
            "2026-06-01",
            "--days",
            "2",
            "--feeds",
            "water",
            "--faults",
            "none",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    msgs = list(read_jsonl(out))
    water_sites = 50
    assert len(msgs) == water_sites * 6 * 2
    assert {m.topic.split("/")[2] for m in msgs} == {"water"}


# ---------------------------------------------------------------------------- realism


def _values(msgs: list[SimMessage], feed: str) -> list[tuple[datetime, str, dict]]:
    out = []
    for m in msgs:
        if m.topic.split("/")[2] != feed or m.kind != "reading":
            continue
        doc = json.loads(m.payload)
        out.append((datetime.fromisoformat(doc["observed_at"]), doc["site_id"], doc))
    return out


def test_winter_pm_above_summer_and_pm25_below_pm10(catalogue: Catalogue) -> None:
    def day_mean(d: date) -> float:
        rows = _values(list(generate(catalogue, d, 1, 11, "none", ["air"])), "air")
        for _, _, doc in rows:
            assert doc["values"]["pm25"] < doc["values"]["pm10"]
        return statistics.fmean(doc["values"]["pm25"] for _, _, doc in rows)

    winter = statistics.fmean(day_mean(date(2026, m, 15)) for m in (1, 12))
    summer = statistics.fmean(day_mean(date(2026, m, 15)) for m in (7, 8))
    assert winter > 1.8 * summer


def test_summer_ozone_peaks_in_the_afternoon(catalogue: Catalogue) -> None:
    rows = _values(list(generate(catalogue, date(2026, 7, 20), 1, 11, "none", ["air"])), "air")
    afternoon = [d["values"]["o3"] for t, _, d in rows if 13 <= t.hour < 17]
    night = [d["values"]["o3"] for t, _, d in rows if t.hour < 5]
    assert statistics.fmean(afternoon) > 3 * statistics.fmean(night)


def test_rush_hour_slower_than_night_and_old_town_worst(catalogue: Catalogue) -> None:
    rows = _values(
        list(generate(catalogue, date(2026, 9, 15), 1, 11, "none", ["traffic"])), "traffic"
    )
    old_town = {s.site_id for s in catalogue.by_feed("traffic") if s.get("is_old_town")}
    free = {s.site_id: float(s.get("free_flow_kmh")) for s in catalogue.by_feed("traffic")}  # type: ignore[arg-type]

    def ratio(hours: set[int], sites: set[str]) -> float:
        v = [
            d["values"]["speed_kmh"] / free[s]
            for t, s, d in rows
            if t.hour in hours and s in sites and d["values"]["speed_kmh"] is not None
        ]
        return statistics.fmean(v)

    rush = {7, 8, 17, 18}
    night = {1, 2, 3, 4}
    everyone = set(free)
    assert ratio(rush, everyone) < 0.8 * ratio(night, everyone)
    assert ratio(rush, old_town) < ratio(rush, everyone - old_town) - 0.1
    volume_rush = statistics.fmean(d["values"]["volume"] for t, _, d in rows if t.hour in rush)
    volume_night = statistics.fmean(d["values"]["volume"] for t, _, d in rows if t.hour in night)
    assert volume_rush > 4 * volume_night


def _storm_day(seed: int, months: tuple[int, ...], want_rain: bool) -> date:
    climate = Climate(seed)
    d = date(2026, months[0], 1)
    while d.month in months:
        rain = climate.day(d).rain_total_mm
        if (rain > 40) if want_rain else (rain == 0 and climate.rain_before(d) == 0):
            return d
        d += timedelta(days=1)
    raise AssertionError("no such day in the seed's climate")


def test_storms_flood_gaotang_first_and_drain_away(catalogue: Catalogue) -> None:
    seed = 11
    wet = _storm_day(seed, (6, 7, 8), want_rain=True)
    dry = _storm_day(seed, (6, 7, 8), want_rain=False)
    gaotang = {
        s.site_id for s in catalogue.by_feed("waterlogging") if s.get("cluster") == "gaotang"
    }

    def depths(d: date) -> dict[str, list[float]]:
        out: dict[str, list[float]] = defaultdict(list)
        for _, s, doc in _values(
            list(generate(catalogue, d, 1, seed, "none", ["waterlogging"])), "waterlogging"
        ):
            out[s].append(doc["values"]["depth_cm"])
        return out

    wet_depths, dry_depths = depths(wet), depths(dry)
    assert max(max(v) for v in dry_depths.values()) < 3.0
    peak_gaotang = statistics.fmean(max(wet_depths[s]) for s in gaotang)
    peak_other = statistics.fmean(max(v) for s, v in wet_depths.items() if s not in gaotang)
    assert peak_gaotang > 15.0  # the national waterlogging criterion is crossed
    assert peak_gaotang > peak_other
    # The water drains: the last hour of the day is back near dry unless it still rains then.
    climate = Climate(seed).day(wet)
    if sum(climate.rain_mmh[-180:]) == 0:
        assert all(v[-1] < 3.0 for v in wet_depths.values())


def test_rivers_mostly_class_ii_some_sections_sometimes_worse(catalogue: Catalogue) -> None:
    rows = _values(list(generate(catalogue, date(2026, 6, 1), 30, 11, "none", ["water"])), "water")
    lakes = {
        s.site_id
        for s in catalogue.by_feed("water")
        if s.get("water_body_type") == "lake_reservoir"
    }

    def class_ii(site: str, v: dict) -> bool:
        tp_limit = 0.025 if site in lakes else 0.1
        return v["do"] >= 6 and v["codmn"] <= 4 and v["nh3n"] <= 0.5 and v["tp"] <= tp_limit

    def mean_of(docs: list[dict]) -> dict:
        return {
            k: statistics.fmean(d["values"][k] for d in docs) for k in ("do", "codmn", "nh3n", "tp")
        }

    by_site: dict[str, list[dict]] = defaultdict(list)
    by_site_day: dict[tuple[str, date], list[dict]] = defaultdict(list)
    for t, s, d in rows:
        by_site[s].append(d)
        by_site_day[(s, t.date())].append(d)
    # Sections are classed on period means (6 results a day): the month is Class II almost
    # everywhere, as the plan reports, but some section-days are worse.
    monthly_ok = [class_ii(s, mean_of(docs)) for s, docs in by_site.items()]
    assert sum(monthly_ok) >= 0.85 * len(monthly_ok)
    daily_bad = {k for k, docs in by_site_day.items() if not class_ii(k[0], mean_of(docs))}
    assert 0 < len(daily_bad) < 0.1 * len(by_site_day)
    assert len({s for s, _ in daily_bad}) < len(by_site) / 2
