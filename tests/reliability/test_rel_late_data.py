"""Late data (issue 13): a gateway offline from noon of D0 to the end of D1 flushes its two-day
backlog as batch payloads (JSON arrays of 100 readings) over a real Mosquitto to the real
`citypipe ingest`, after the KPIs of D0 and D1 were computed and published from partial data.
The next daily run (`citypipe run citypipe_daily_kpis --date D2`, real Airflow) finds the days
the backlog touched (core.dirty_days within the look-back, transforms/daily.days_to_recompute)
and restates them: to exactly what an on-time run over the same readings gives (a second home
computes that), recorded in kpi.restatements and served by `/api/v1/restatements`. The retained
MQTT pack carries the newest day only, so the restated older days are not republished there."""

from __future__ import annotations

import shutil
import time
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from support.ingest_fixtures import publish, quarantine_reasons
from support.ingest_process import Ingest
from support.rel_late import CST, kpi_run, kpi_steps, landing_files, make_traffic, retained_pack
from support.reliability import SCALE, Figures
from support.serving_helpers import load, serving

from common.settings import Settings
from simulator.broker import BrokerHandle
from warehouse import db

pytestmark = pytest.mark.backends("file")

D0, D1, D2 = date(2026, 11, 23), date(2026, 11, 24), date(2026, 11, 25)
OFFLINE_FROM = datetime(2026, 11, 23, 12, 0, tzinfo=CST)  # the gateway drops off at noon of D0
OFFLINE_UNTIL = datetime(2026, 11, 25, 0, 0, tzinfo=CST)  # and comes back at midnight of D2

PACK = (
    "select kpi_id, local_date, dimension, value, value_text from kpi.pack_values "
    "where local_date between ? and ? order by all"
)


def pack(settings: Settings) -> dict[tuple[str, date, str], tuple[Any, Any]]:
    with db.reader(settings) as con:
        rows = con.execute(PACK, [D0, D2]).fetchall()
    return {(k, d, dim): (v, t) for k, d, dim, v, t in rows}


def kpi_tables(settings: Settings) -> dict[str, list[tuple]]:
    """Every KPI table's rows of D0..D2 (those with a local_date), without the columns that say
    when or by which run they were computed: what an on-time run and a restating run share."""
    out: dict[str, list[tuple]] = {}
    with db.reader(settings) as con:
        tables = con.execute(
            "select table_name from information_schema.columns where table_schema = 'kpi' "
            "and column_name = 'local_date' and table_name not in ('restatements', 'runs') "
            "and table_name not like 'intraday%' order by 1"
        ).fetchall()
        for (table,) in tables:
            cols = [
                c
                for (c,) in con.execute(
                    "select column_name from information_schema.columns "
                    "where table_schema = 'kpi' and table_name = ? order by ordinal_position",
                    [table],
                ).fetchall()
                if not (c.endswith("_at") or c.endswith("run_id") or c == "reason")
            ]
            select = ", ".join(f'"{c}"' for c in cols)
            # Identifiers from the catalogue, not from input; values bound.
            out[table] = con.execute(
                f'select {select} from kpi."{table}" where local_date between ? and ? order by all',
                [D0, D2],
            ).fetchall()
    return out


def test_a_two_day_backlog_is_accepted_and_restates_the_days_it_touched(
    settings: Settings,
    mosquitto_broker: BrokerHandle,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    figures: Figures,
) -> None:
    traffic = make_traffic([D0, D1, D2], OFFLINE_FROM, OFFLINE_UNTIL, full=SCALE == "full")
    assert traffic.backlog_days == {D0, D1}
    before_d2 = traffic.on_time[D0] + traffic.on_time[D1]
    on_d2 = traffic.on_time[D2]
    # The KPI runs publish the pack: `citypipe run` reads the environment, the steps the settings.
    monkeypatch.setenv("CITYPIPE_MQTT_URL", mosquitto_broker.url)
    settings = settings.model_copy(update={"mqtt_url": mosquitto_broker.url})
    ingest = Ingest(settings.home, mosquitto_broker.url)
    try:
        ingest.wait_for(lambda st: st.get("connected"))

        # 1. D0 and D1 on time, except the gateway's sites from noon of D0: computed, published.
        publish(mosquitto_broker, before_d2, client_id="rel-late-sensors")
        ingest.wait_for(lambda st: st["records"]["accepted"] >= len(before_d2), 300)
        load(settings, "rel-late-on-time")
        for day in (D0, D1):  # Airflow at the full scale; the same tasks in-process for CI
            if SCALE == "full":
                kpi_run(day)
            else:
                kpi_steps(settings, day, f"rel-late {day}", publish=True)
        partial = pack(settings)
        assert {d for _, d, _ in partial} == {D0, D1}
        assert {p["local_date"] for p in retained_pack(mosquitto_broker).values()} == {str(D1)}

        # 2. The gateway is back: its backlog as arrays, and D2 from every site on time.
        flushed_at = time.monotonic()
        publish(mosquitto_broker, traffic.backlog, client_id="rel-late-gateway")
        publish(mosquitto_broker, on_d2, client_id="rel-late-sensors")
        total = len(before_d2) + traffic.backlog_readings + len(on_d2)
        st = ingest.wait_for(lambda st: st["records"]["accepted"] >= total, 300)
    finally:
        ingest.signal(15)
        assert ingest.wait() == 0
    assert st["records"]["accepted"] == total == traffic.readings, st["records"]
    assert st["records"]["duplicates"] == 0 and st["invariant_ok"] is True, st
    assert quarantine_reasons(settings.home) == {}

    # 3. The load, then the next daily run (real Airflow): it finds D0 and D1 and restates them.
    load(settings, "rel-late-backlog")
    with db.reader(settings) as con:
        loaded = dict(
            con.execute(
                "select 'air', count(*) from core.obs_air"
                " union all select 'traffic', count(*) from core.obs_traffic"
                " union all select 'waterlogging', count(*) from core.obs_waterlogging"
            ).fetchall()
        )
    assert sum(loaded.values()) == traffic.readings, loaded  # every backlog reading is in
    kpi_run(D2)
    restated_s = time.monotonic() - flushed_at
    restated = pack(settings)

    # 4. The same readings on time, in a second home: D0, D1, D2 each computed once.
    ref = settings.model_copy(update={"home": tmp_path / "on-time"})
    for path in landing_files(settings.home):
        dest = ref.home / path.relative_to(settings.home)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, dest)
    load(ref, "rel-late-reference")
    for day in (D0, D1, D2):
        kpi_steps(ref, day, f"on time {day}")
    assert restated == pack(ref)
    tables = kpi_tables(settings)
    assert tables == kpi_tables(ref)
    compared = {t: len(rows) for t, rows in tables.items() if rows}
    assert "pack_values" in compared and len(compared) >= 5, compared

    # The backlog changed the partial days' values, and each change is one restatement row.
    changed = {k for k, v in partial.items() if restated.get(k) != v}
    assert changed, "the backlog changed no KPI: the case proves nothing"
    assert {d for _, d, _ in changed} == {D0, D1}
    with db.reader(settings) as con:
        rows = con.execute(
            "select kpi_id, local_date, dimension, old_value, new_value, old_value_text, "
            "new_value_text, reason from kpi.restatements order by all"
        ).fetchall()
    assert {(k, d, dim) for k, d, dim, *_ in rows} == changed
    for k, d, dim, old, new, old_text, new_text, reason in rows:
        assert (old, old_text) == partial[(k, d, dim)]
        assert (new, new_text) == restated.get((k, d, dim), (None, None))
        assert reason.startswith("citypipe_daily_kpis ")  # the Airflow run of D2
    assert len({r[-1] for r in rows}) == 1, "one run restated them all"

    # The API serves them (the real server over the late home).
    with serving(settings, tmp_path) as server, server.client() as api:
        served = api.get(
            "/api/v1/restatements", params={"start": D0, "end": D1, "limit": 1000}
        ).json()
    got = {(r["kpi_id"], r["local_date"], r["dimension"]) for r in served["rows"]}
    assert got == {(k, d.isoformat(), dim) for k, d, dim in changed}, served

    # The retained MQTT pack holds the newest day (D2) only: the restated D0/D1 are not in it.
    retained = retained_pack(mosquitto_broker)
    republished = sum(p["local_date"] in (str(D0), str(D1)) for p in retained.values())
    assert republished == 0 and {p["local_date"] for p in retained.values()} == {str(D2)}
    expected_d2 = {(k, dim): v for (k, d, dim), (v, _) in restated.items() if d == D2}
    assert {(p["kpi_id"], p["dimension"]): p["value"] for p in retained.values()} == expected_d2

    figures.add("backlog readings", traffic.backlog_readings, "readings", "accepted, all")
    figures.add("backlog messages", len(traffic.backlog), "messages", "arrays of 100 readings")
    figures.add("readings in total", traffic.readings, "readings", "on time + backlog")
    figures.add("days affected", len(traffic.backlog_days), "days")
    figures.add(
        "KPI tables equal to on time",
        len(compared),
        "tables",
        f"{sum(compared.values())} rows of D0..D2",
    )
    figures.add("KPI values restated", len(changed), "values", "(kpi, day, dimension)")
    figures.add("restatement rows", len(rows), "rows", "kpi.restatements")
    figures.add(
        "flush to restated",
        restated_s / 60,
        "min",
        "publish backlog → ingest → load → citypipe run D2",
    )
    figures.add(
        "restated D0/D1 values in the retained pack", republished, "messages", "newest only"
    )
