"""Unit: the dedupe index (lazy load from landing files, eviction, revision vs duplicate)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

from support.payloads import STREAMS, _reading

from common.settings import Settings
from ingestion.contract import ContractParser, Reading
from ingestion.dedupe import DedupeIndex, Verdict, reading_digests
from ingestion.landing import landing_partition, landing_table, write_table_atomic

NOW = datetime.now(UTC)


def _readings(settings: Settings, ks: range, value: float = 10.0) -> list[Reading]:
    parser = ContractParser.from_settings(settings)
    stream = STREAMS[0]
    start = datetime(2026, 3, 1, 4, 0, tzinfo=UTC)  # 12:00 in Wushan: one local day
    out = []
    for k in ks:
        doc = _reading(stream, k, start, value)
        pm = parser.parse(f"city/wushan/air/{stream[1]}", json.dumps(doc).encode(), NOW)
        assert not pm.rejections, pm.rejections
        out.extend(pm.readings)
    return out


def _digests(readings: list[Reading]) -> tuple[list[int], list[int]]:
    d = [reading_digests(r.row) for r in readings]
    return [k for k, _ in d], [p for _, p in d]


def test_new_duplicate_revision_in_one_batch(settings: Settings) -> None:
    index = DedupeIndex(lambda pid: ([], []))
    a = _readings(settings, range(3))
    revised = _readings(settings, range(1), value=11.0)
    batch = [*a, a[0], revised[0], revised[0]]
    keys, pairs = _digests(batch)
    verdicts = index.classify(("air", date(2026, 3, 1)), keys, pairs)
    assert verdicts == [
        Verdict.NEW,
        Verdict.NEW,
        Verdict.NEW,
        Verdict.DUPLICATE,  # same reading again in the same batch
        Verdict.REVISION,  # same key, new value
        Verdict.DUPLICATE,  # the revision again
    ]


def test_commit_makes_later_batches_duplicates(settings: Settings) -> None:
    index = DedupeIndex(lambda pid: ([], []))
    pid = ("air", date(2026, 3, 1))
    keys, pairs = _digests(_readings(settings, range(5)))
    assert set(index.classify(pid, keys, pairs)) == {Verdict.NEW}
    # Not committed (e.g. the write failed): still new, so a redelivery is not dropped.
    assert set(index.classify(pid, keys, pairs)) == {Verdict.NEW}
    index.commit(pid, keys, pairs)
    assert set(index.classify(pid, keys, pairs)) == {Verdict.DUPLICATE}
    assert index.entries == 10  # 5 keys + 5 pairs


def test_lazy_load_from_landing_files_across_restarts(settings: Settings) -> None:
    readings = _readings(settings, range(50))
    day = readings[0].local_date
    assert all(r.local_date == day for r in readings)
    write_table_atomic(
        landing_table("air", [r.row for r in readings[:30]]),
        landing_partition(settings.landing_dir, "air", day),
    )
    index = DedupeIndex.for_dirs(settings.landing_dir, settings.quarantine_dir)
    assert index.loads == 0  # nothing read until a partition is touched
    keys, pairs = _digests(readings)
    verdicts = index.classify(("air", day), keys, pairs)
    assert index.loads == 1
    assert verdicts == [Verdict.DUPLICATE] * 30 + [Verdict.NEW] * 20
    revised = _readings(settings, range(30, 32), value=99.0)
    rk, rp = _digests(revised)
    assert index.classify(("air", day), rk, rp) == [Verdict.NEW, Verdict.NEW]
    rk0, rp0 = _digests(_readings(settings, range(2), value=99.0))
    assert index.classify(("air", day), rk0, rp0) == [Verdict.REVISION, Verdict.REVISION]
    # Another partition of the same feed is independent.
    assert index.classify(("air", date(2026, 3, 2)), keys[:1], pairs[:1]) == [Verdict.NEW]


def test_lru_eviction_bounds_memory_and_reloads(tmp_path: Path) -> None:
    calls: list[tuple[str, date]] = []
    disk: dict[tuple[str, date], tuple[list[int], list[int]]] = {}

    def loader(pid: tuple[str, date]) -> tuple[list[int], list[int]]:
        calls.append(pid)
        return disk.get(pid, ([], []))

    index = DedupeIndex(loader, max_entries=250)
    days = [date(2026, 3, d) for d in range(1, 5)]
    for i, d in enumerate(days):
        keys = list(range(i * 1000, i * 1000 + 50))
        pairs = [k + 10**9 for k in keys]
        index.classify(("air", d), keys, pairs)
        index.commit(("air", d), keys, pairs)
        disk[("air", d)] = (keys, pairs)  # what the landing files now hold
    assert index.entries <= 250
    assert index.evictions >= 1
    assert ("air", days[0]) not in index.partitions  # least recently used went first
    assert ("air", days[-1]) in index.partitions
    # Touching an evicted partition reloads it from disk and still recognises its readings.
    keys0 = list(range(50))
    assert set(index.classify(("air", days[0]), keys0, [k + 10**9 for k in keys0])) == {
        Verdict.DUPLICATE
    }
    assert calls.count(("air", days[0])) == 2
