"""Unit: atomic landing files (no partial or temp file is ever visible as a landing file)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from common.settings import REPO_ROOT
from ingestion import landing
from ingestion.landing import list_parts, remove_stale_temp_files, write_table_atomic
from ingestion.schema import QUARANTINE_SCHEMA


def _table(n: int = 3) -> pa.Table:
    return pa.table({"x": list(range(n))})


def test_write_is_complete_and_named_per_layout(tmp_path: Path) -> None:
    part = tmp_path / "landing" / "air" / "local_date=2026-03-01"
    path = write_table_atomic(_table(5), part)
    assert path.parent == part
    assert path.name.startswith("part-") and path.name.endswith(".parquet")
    assert pq.read_table(path).num_rows == 5
    assert list_parts(part) == [path]
    assert [p.name for p in part.iterdir()] == [path.name]  # no temp file left


def test_failure_before_rename_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(src: object, dst: object) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(landing.os, "replace", boom)
    with pytest.raises(OSError, match="disk gone"):
        write_table_atomic(_table(), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_crash_between_write_and_rename_leaves_no_landing_file(tmp_path: Path) -> None:
    # A real process, killed with SIGKILL after the temp file is written and fsync'd, before rename.
    script = (
        "import sys, time, pyarrow as pa\n"
        "from pathlib import Path\n"
        "from ingestion import landing\n"
        "def hang(src, dst):\n"
        "    print('written', flush=True); time.sleep(60)\n"
        "landing.os.replace = hang\n"
        "landing.write_table_atomic(pa.table({'x': [1, 2]}), Path(sys.argv[1]))\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "written"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    left = list(tmp_path.iterdir())
    assert len(left) == 1 and left[0].name.startswith(".part-") and left[0].suffix == ".tmp"
    assert list_parts(tmp_path) == []  # readers never see it
    assert sorted(tmp_path.glob("*.parquet")) == []
    assert remove_stale_temp_files(tmp_path) == 1
    assert list(tmp_path.iterdir()) == []


def test_quarantine_table_matches_schema() -> None:
    t = landing.quarantine_table(
        [
            {
                "received_at": datetime.now(UTC),
                "topic": "city/wushan/air/",
                "feed": None,
                "site_id": None,
                "reason": "bad_topic",
                "detail": "topic is not ...",
                "reading_index": None,
                "payload": b"{}",
                "payload_bytes": 2,
                "received_date": datetime.now(UTC).date(),
            }
        ]
    )
    assert t.schema == QUARANTINE_SCHEMA
    assert t.num_rows == 1


def time_utc():
    from datetime import UTC, datetime

    return datetime.now(UTC)
