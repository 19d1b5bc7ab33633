"""`citypipe ingest` as a real process: SIGTERM (clean) and SIGKILL (crash) while messages stream in."""

from __future__ import annotations

import os
import signal
import threading

import pytest
from support.ingest_fixtures import landing_rows, publish, quarantine_reasons, temp_files
from support.ingest_process import Ingest, gone
from support.payloads import make_plan

from common.settings import Settings
from simulator.broker import BrokerHandle

pytestmark = pytest.mark.integration


def _publisher(broker: BrokerHandle, messages: list[tuple[str, bytes]]) -> threading.Thread:
    t = threading.Thread(target=publish, args=(broker, messages), daemon=True)
    t.start()
    return t


def test_sigterm_flushes_acks_and_exits_zero(settings: Settings, broker: BrokerHandle) -> None:
    home = settings.home
    plan = make_plan(6000, seed=5, faults=False)
    first = Ingest(home, broker.url)
    first.wait_for(lambda st: st.get("connected"))
    pub = _publisher(broker, plan.messages)
    first.wait_for(lambda st: st["records"]["accepted"] >= 1500)
    first.signal(signal.SIGTERM)
    assert first.wait(30) == 0
    st = first.read_status()
    assert st["messages"]["received"] == st["messages"]["acked"] > 0
    assert st["messages"]["pending"] == 0
    assert st["invariant_ok"] is True
    assert temp_files(home) == []
    pub.join(120)

    second = Ingest(home, broker.url, "--until-idle", "2")
    assert second.wait(120) == 0
    st2 = second.read_status()
    # Everything the first run took was landed AND acknowledged: nothing comes back as a duplicate.
    assert st2["records"]["duplicates"] == 0
    assert st["records"]["accepted"] + st2["records"]["accepted"] == plan.valid_readings
    assert landing_rows(home) == plan.expected_rows


def test_writer_death_exits_nonzero_and_acks_nothing_more(
    settings: Settings, broker: BrokerHandle
) -> None:
    home = settings.home
    plan = make_plan(15_000, seed=7, faults=False)
    first = Ingest(home, broker.url)
    first.wait_for(lambda st: st.get("connected"))
    (writer,) = first.writer_pids()
    pub = _publisher(broker, plan.messages)
    first.wait_for(lambda st: st["records"]["accepted"] >= 1000)
    os.kill(writer, signal.SIGKILL)
    assert first.wait(30) == 1  # the service does not carry on without its writer
    st = first.read_status()
    assert st["invariant_ok"] is True
    assert 0 < st["messages"]["acked"] <= st["messages"]["received"]
    assert st["records"]["accepted"] < plan.valid_readings, "not a mid-stream kill"
    pub.join(120)

    second = Ingest(home, broker.url, "--until-idle", "2")
    assert second.wait(120) == 0
    # Nothing acked was lost; what the dead writer had landed but not reported came back and
    # was recognised as a duplicate, not stored twice.
    assert landing_rows(home) == plan.expected_rows
    assert quarantine_reasons(home) == plan.expected_quarantine
    assert second.read_status()["invariant_ok"] is True


@pytest.mark.slow
def test_sigkill_twice_mid_stream_loses_nothing_stores_nothing_twice(
    settings: Settings, broker: BrokerHandle
) -> None:
    home = settings.home
    plan = make_plan(50_000, seed=11)
    total = plan.valid_readings
    runs: list[dict] = []
    proc = Ingest(home, broker.url, "--until-idle", "3")
    proc.wait_for(lambda st: st.get("connected"))
    pub = _publisher(broker, plan.messages)
    landed_before = 0
    for threshold in (15_000, 35_000):
        st = proc.wait_for(
            lambda st, t=threshold, b=landed_before: b + st["records"]["accepted"] >= t, 120
        )
        writers = proc.writer_pids()
        assert writers, "no writer process"
        proc.signal(signal.SIGKILL)
        assert proc.wait(10) == -signal.SIGKILL
        assert all(gone(pid) for pid in writers), "writer outlived the killed service"
        runs.append(st)
        landed_before += st["records"]["accepted"]
        assert landed_before < total, "the stream ended before the kill: not a mid-stream kill"
        # Same client id: the persistent session hands over the backlog and unacked messages.
        proc = Ingest(home, broker.url, "--until-idle", "3")
    pub.join(180)
    assert not pub.is_alive()
    assert proc.wait(180) == 0  # drains, then idles out cleanly
    final = proc.read_status()
    runs.append(final)

    assert final["invariant_ok"] is True
    r = final["records"]
    assert r["received"] == r["accepted"] + r["quarantined"] + r["duplicates"]
    assert temp_files(home) == []
    rows = landing_rows(home)
    missing = plan.expected_rows - rows
    extra = rows - plan.expected_rows
    assert not missing, f"{sum(missing.values())} valid readings lost"
    assert not extra, f"{sum(extra.values())} unexpected or repeated rows"
    assert quarantine_reasons(home) == plan.expected_quarantine
