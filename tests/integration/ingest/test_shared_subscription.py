"""Two real `citypipe ingest --shared` processes on one shared subscription (real Mosquitto, one
data folder, as the compose file's ingest-1 and ingest-2), then the ingest DAG's load chain into a
real warehouse: the stream is split, and every reading is stored exactly once.

Exact re-deliveries (a gateway resending the same bytes) may reach the other process, whose dedupe
index has never seen them: the landing zone may then hold a reading twice, and the warehouse's
load (deduplication by natural key, the ledger) must still store it once.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from datetime import UTC

import pytest
from support.ingest_fixtures import VALUE_COLUMN, landing_rows, publish, temp_files
from support.payloads import make_plan
from support.serving_helpers import load

from bench.bench_shared import ingest_group, wait_all_acked
from common.settings import Settings
from simulator.broker import BrokerHandle
from warehouse import db

pytestmark = pytest.mark.integration

CORE_ROWS = {
    "air": "select site_id, device_id, null, observed_at, pm25_ugm3 from core.obs_air",
    "waterlogging": (
        "select site_id, device_id, null, observed_at, depth_cm from core.obs_waterlogging"
    ),
    "traffic": "select site_id, device_id, lane, observed_at, volume_veh from core.obs_traffic",
}


def _records(payload: bytes) -> int:
    doc = json.loads(payload)
    return len(doc) if isinstance(doc, list) else 1


def warehouse_rows(settings: Settings) -> Counter[tuple]:
    """(feed, site, device, lane, observed_at UTC, main value) -> rows in the core tables."""
    out: Counter[tuple] = Counter()
    with db.reader(settings) as con:
        for feed, sql in CORE_ROWS.items():
            for site, dev, lane, obs, v in con.execute(sql).fetchall():
                out[(feed, site, dev, lane, obs.astimezone(UTC), float(v))] += 1
    return out


def test_two_processes_split_the_stream_and_the_warehouse_holds_each_reading_once(
    ingest_settings: Settings, broker: BrokerHandle
) -> None:
    assert set(VALUE_COLUMN) == set(CORE_ROWS)  # the plan's feeds, all checked
    plan = make_plan(2000, seed=12, faults=False)
    rng = random.Random(12)
    resent = rng.sample(plan.messages, len(plan.messages) // 30)  # ~3 % sent twice
    messages = plan.messages + resent
    home = ingest_settings.home
    ids = ["citypipe-ingest-wushan-1", "citypipe-ingest-wushan-2"]
    with ingest_group(home, broker, ids) as procs:
        assert publish(broker, messages) == len(messages)
        wait_all_acked(procs, len(messages), timeout=120)
        statuses = [p.status for p in procs]
    assert [p.proc.returncode for p in procs] == [0, 0], [p.log.read_text() for p in procs]

    # The broker split the stream between the two members.
    got = [s["messages"]["acked"] for s in statuses]
    assert sum(got) == len(messages), got
    assert min(got) >= len(messages) // 5, f"one member starved: {got}"
    # Each process's own books balance; together they saw every record once.
    for s in statuses:
        r = s["records"]
        assert s["invariant_ok"] is True
        assert r["received"] == r["accepted"] + r["quarantined"] + r["duplicates"], r
        assert r["quarantined"] == 0
    resent_records = sum(_records(payload) for _, payload in resent)
    received = sum(s["records"]["received"] for s in statuses)
    assert received == plan.records + resent_records
    accepted = sum(s["records"]["accepted"] for s in statuses)
    duplicates = sum(s["records"]["duplicates"] for s in statuses)
    assert accepted + duplicates == received
    # The landing zone: every reading, some resent ones possibly twice (the other process's).
    landed = landing_rows(home)
    assert set(landed) == set(plan.expected_rows)
    assert sum(landed.values()) == accepted
    assert temp_files(home) == []

    load(ingest_settings, "shared-subscription")
    stored = warehouse_rows(ingest_settings)
    assert stored == plan.expected_rows  # every reading, each exactly once, with its value
    assert max(stored.values()) == 1


def test_a_starting_instance_removes_only_its_own_dead_temp_files(
    ingest_settings: Settings, broker: BrokerHandle
) -> None:
    """At start a writer deletes the temp files its crashed predecessor left. In one data folder
    shared by several instances it must leave the others' alone: one may be mid-write, and
    losing its temp file fails that write (the rename finds nothing) and crashes the instance."""
    home = ingest_settings.home
    part = home / "landing" / "air" / "local_date=2026-12-07"
    part.mkdir(parents=True)
    mine = part / ".part-part-20261207T000000000000Z-aa.parquet.citypipe-ingest-wushan-1.tmp"
    peers = part / ".part-part-20261207T000000000000Z-bb.parquet.citypipe-ingest-wushan-2.tmp"
    for p in (mine, peers):
        p.write_bytes(b"half a parquet file")
    with ingest_group(home, broker, ["citypipe-ingest-wushan-1"]) as procs:
        deadline = time.monotonic() + 60
        while mine.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not mine.exists(), procs[0].log.read_text()
        assert peers.exists()  # another instance's write in progress: untouched
    assert procs[0].proc.returncode == 0
