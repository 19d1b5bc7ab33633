"""Ingest under faults (issue 13): kills, a broker restart, an unwritable landing zone, an absent broker.

Every case runs the real parts: Mosquitto with the project's config (persistence on), the real
`citypipe ingest` process (its writer process included), deterministic QoS 1 traffic with known
expected rows (``make_plan``: readings, batches, resends, revisions, malformed messages), then
the ingest DAG's own load steps into a DuckDB warehouse. Each case asserts that the warehouse
holds every unique reading exactly once (nothing lost, nothing stored twice, the latest revision
of each), that the landing zone holds exactly the planned rows and the quarantine the planned
rejects, and that every run's counters balance. The figures it records go to the reliability
table (docs/reliability.md).
"""

from __future__ import annotations

import signal
import time

from support.ingest_fixtures import landing_rows, quarantine_reasons, temp_files
from support.ingest_process import Ingest, gone
from support.payloads import Plan, make_plan
from support.rel_faults import (
    Publisher,
    drain_and_stop,
    files_created_between,
    ingest_log_tail,
    read_only,
    reconcile,
    wait_until,
    warehouse_check,
)
from support.reliability import Figures, at_scale

from common.settings import Settings
from simulator.broker import BrokerHandle

N_READINGS = at_scale(ci=20_000, full=100_000)
# How long the publisher takes to send the plan: the faults must strike mid-stream.
PUBLISH_S = at_scale(ci=6.0, full=40.0)


def _check_outcome(settings: Settings, plan: Plan, statuses: list[dict], figures: Figures) -> None:
    """The end state every case must reach, and the figures every case records."""
    home = settings.home
    assert temp_files(home) == []
    rows = landing_rows(home)
    missing = plan.expected_rows - rows
    extra = rows - plan.expected_rows
    assert not missing, f"{sum(missing.values())} valid readings never landed"
    assert not extra, f"{sum(extra.values())} rows landed twice or unplanned"
    assert quarantine_reasons(home) == plan.expected_quarantine

    t0 = time.monotonic()
    wh = warehouse_check(settings, plan)
    load_s = time.monotonic() - t0
    assert (wh.lost, wh.duplicated, wh.unexpected, wh.wrong_value) == (0, 0, 0, 0), wh
    assert wh.stored == wh.expected

    totals = reconcile(statuses)
    # Duplicates beyond the plan's own resends: what the broker redelivered (not acked, or its
    # ack lost with a connection) after it had been made durable. Exact even across SIGKILLs: a
    # record landed in a killed run's last unreported moment comes back and counts here, once.
    redelivered = totals.duplicates - plan.duplicates
    assert redelivered >= 0
    assert totals.quarantined <= sum(plan.expected_quarantine.values())
    figures.add(
        "readings sent", plan.valid_readings, "readings", f"{len(plan.messages):,} messages"
    )
    figures.add("unique readings in the warehouse", wh.stored, "rows", f"of {wh.expected:,}")
    figures.add("lost", wh.lost, "readings")
    figures.add("duplicated", wh.duplicated, "rows")
    figures.add(
        "broker redeliveries seen as duplicates",
        redelivered,
        "records",
        "status files: duplicates beyond the plan's own resends",
    )
    figures.add("landing zone to warehouse (load + check)", load_s, "s")
    figures.add(
        "counters reconcile",
        True,
        note=f"{len(statuses)} runs: received = accepted + quarantined + duplicates",
    )


def _accepted(statuses: list[dict], current: Ingest) -> int:
    return sum(s["records"]["accepted"] for s in statuses) + current.read_status().get(
        "records", {}
    ).get("accepted", 0)


def _first_ack_s(proc: Ingest, timeout: float = 120) -> float:
    return wait_until(
        lambda: proc.read_status().get("messages", {}).get("acked", 0) > 0, timeout, "a first ack"
    )


# ---------------------------------------------------------------------- 1. SIGKILL x3


def test_sigkill_three_times_mid_stream(
    settings: Settings, broker: BrokerHandle, figures: Figures
) -> None:
    plan = make_plan(N_READINGS, seed=13)
    total = plan.valid_readings
    statuses: list[dict] = []
    recoveries: list[float] = []
    proc = Ingest(settings.home, broker.url)
    proc.wait_for(lambda st: st.get("connected"))
    pub = Publisher(broker, plan.messages, len(plan.messages) / PUBLISH_S).start()
    for fraction in (0.25, 0.5, 0.75):
        wait_until(
            lambda f=fraction, p=proc: _accepted(statuses, p) >= f * total, 120, f"{fraction:.0%}"
        )
        writers = proc.writer_pids()
        assert writers, "no writer process"
        proc.signal(signal.SIGKILL)
        assert proc.wait(10) == -signal.SIGKILL
        assert all(gone(pid) for pid in writers), "the writer outlived the killed service"
        statuses.append(proc.read_status())  # its last status (written every 0.2 s)
        assert _accepted(statuses[:-1], proc) < total, "the stream ended before the kill"
        # Same client id: the persistent session hands over the backlog and the unacked messages.
        proc = Ingest(settings.home, broker.url)
        recoveries.append(_first_ack_s(proc))
    pub.join()
    statuses.append(drain_and_stop(proc))

    _check_outcome(settings, plan, statuses, figures)
    figures.add("SIGKILLs of the service", 3, "kills", "at 25/50/75 % of the readings")
    figures.add("restart to first ack, max", max(recoveries), "s", "new process + dedupe index")


# ---------------------------------------------------------------------- 2. broker restart


def test_broker_restart_mid_stream_keeps_the_session(
    settings: Settings, broker: BrokerHandle, figures: Figures
) -> None:
    plan = make_plan(N_READINGS, seed=17)
    proc = Ingest(settings.home, broker.url)
    proc.wait_for(lambda st: st.get("connected"))
    pub = Publisher(broker, plan.messages, len(plan.messages) / PUBLISH_S).start()
    wait_until(lambda: pub.fraction_sent >= 0.4, 120, "40 % published")
    before = proc.read_status()
    # Freeze the service so a backlog builds up at the broker for its session: what only the
    # persistence file can carry across the restart (without it, this backlog would be lost).
    proc.signal(signal.SIGSTOP)
    time.sleep(2.0)
    backlog = pub.acked - before["messages"]["received"]
    t0 = time.monotonic()
    broker.stop()  # SIGTERM: Mosquitto writes its persistence file (sessions, queued messages)
    assert pub.acked < len(plan.messages), "the stream ended before the restart"
    broker.start_again()
    down_s = time.monotonic() - t0
    proc.signal(signal.SIGCONT)
    connects = before["connects"]
    reconnect_s = wait_until(
        lambda: (
            proc.read_status().get("connects", 0) > connects and proc.read_status().get("connected")
        ),
        120,
        "the ingest service to reconnect",
    )
    pub.join()
    assert pub.connects >= 2, "the publisher never reconnected"
    final = drain_and_stop(proc)
    assert final["disconnects"] >= 1

    _check_outcome(settings, plan, [final], figures)
    m = before["messages"]
    figures.add("broker restarts", 1, note="SIGTERM, start again: same port and persistence dir")
    figures.add("broker down", down_s, "s")
    figures.add("ingest reconnected after broker back", reconnect_s - down_s, "s")
    figures.add("unacked at the ingest when stopped", m["received"] - m["acked"], "messages")
    figures.add(
        "backlog carried by the broker's persistence",
        backlog,
        "messages",
        "published, not yet received by the frozen service (broker queue + socket buffers)",
    )


# ---------------------------------------------------------------------- 3. unwritable landing


def test_unwritable_landing_acks_nothing_then_recovers(
    settings: Settings, broker: BrokerHandle, figures: Figures
) -> None:
    home = settings.home
    window_s = at_scale(ci=8.0, full=30.0)
    plan = make_plan(N_READINGS, seed=19)
    total = plan.valid_readings
    proc = Ingest(home, broker.url)
    proc.wait_for(lambda st: st.get("connected"))
    pub = Publisher(broker, plan.messages, len(plan.messages) / (PUBLISH_S + window_s)).start()
    wait_until(lambda: _accepted([], proc) >= 0.3 * total, 120, "30 % landed")
    roots = [settings.landing_dir, settings.quarantine_dir]
    failed: list[dict] = []  # the final status of every run that exited (each one restarted)
    exits: list[int] = []
    first = proc
    first_acked: int | None = None  # the first run's acks, once those of pre-switch files are out

    def supervise() -> Ingest:
        """The supervisor (compose restart policy, systemd Restart=on-failure): restart after 1 s."""
        nonlocal first_acked
        rc = proc.proc.poll()
        if rc is None:
            return proc
        proc.wait(5)
        exits.append(rc)
        failed.append(proc.read_status())
        if first_acked is None:  # the first run failed within a second of the switch
            first_acked = failed[0]["messages"]["acked"]
        time.sleep(1.0)
        return Ingest(home, broker.url)

    with read_only(*roots) as how:
        t_ro, wall_ro = time.monotonic(), time.time()
        while time.monotonic() - t_ro < window_s:
            if first_acked is None and proc is first and time.monotonic() - t_ro >= 1.0:
                # Acks of batches made durable before the switch have gone out by now.
                first_acked = first.read_status()["messages"]["acked"]
            proc = supervise()
            time.sleep(0.05)
        at_restore = proc.read_status()  # the run alive at the end of the window
        wall_restore = time.time()
    t_restore = time.monotonic()
    # A run may still fail on a write begun just before the restore: keep supervising.
    while proc.read_status().get("messages", {}).get("acked", 0) == 0:
        assert time.monotonic() - t_restore < 120, "no ack within 120 s of the restore"
        proc = supervise()
        time.sleep(0.05)
    recovery_s = time.monotonic() - t_restore
    pub.join()
    last = drain_and_stop(proc)

    assert exits, "the service never noticed: no write failed while the landing zone was read-only"
    assert set(exits) == {1}, f"exit statuses: {exits}"
    # Nothing acknowledged while unwritable: the first run's count froze at the switch, and every
    # other run that failed, and the one alive at the restore, acknowledged nothing at all.
    assert first_acked is not None
    acks_in_window = (
        failed[0]["messages"]["acked"]
        - first_acked
        + sum(s["messages"]["acked"] for s in failed[1:])
        + at_restore.get("messages", {}).get("acked", 0)
    )
    assert acks_in_window == 0, (first_acked, failed, at_restore)
    assert files_created_between(roots, wall_ro + 0.5, wall_restore) == []
    assert failed[0]["records"]["accepted"] < total, "everything had landed before the fault"
    assert "landing write failed" in ingest_log_tail(home, 10**6)

    _check_outcome(settings, plan, [*failed, last], figures)
    figures.add("unwritable for", window_s, "s", how)
    figures.add(
        "acks while unwritable",
        acks_in_window,
        "messages",
        f"{len(exits)} runs exited 1 and were restarted (1 s delay)",
    )
    figures.add("restore to first ack", recovery_s, "s")
    figures.add("seconds without ack", t_restore - t_ro + recovery_s, "s", "switch to first ack")


# ---------------------------------------------------------------------- 4. broker absent


def test_broker_absent_at_start_and_mid_run(
    settings: Settings, broker: BrokerHandle, figures: Figures
) -> None:
    absent_s = at_scale(ci=3.0, full=15.0)
    outage_s = at_scale(ci=6.0, full=10.0)
    plan = make_plan(N_READINGS, seed=23)
    broker.stop()
    # The service (no --until-idle: the daemon) starts with no broker: it must wait for it,
    # retrying with backoff, not exit (a batch run, --until-idle, exits 3: cron must see it).
    proc = Ingest(settings.home, broker.url)
    st = proc.wait_for(lambda st: True, 120)  # up: its writer is ready, it tries to connect
    time.sleep(absent_s)
    assert proc.proc.poll() is None, ingest_log_tail(settings.home)
    st = proc.read_status()
    assert st["connected"] is False and st["connects"] == 0
    retries = ingest_log_tail(settings.home, 10**6).count("cannot connect to broker")
    assert retries >= 1
    broker.start_again()
    t_up = time.monotonic()
    proc.wait_for(lambda st: st.get("connected"), 120)
    first_connect_s = time.monotonic() - t_up

    pub = Publisher(broker, plan.messages, len(plan.messages) / PUBLISH_S).start()
    wait_until(lambda: pub.fraction_sent >= 0.4, 120, "40 % published")
    broker.stop()
    assert pub.acked < len(plan.messages), "the stream ended before the outage"
    time.sleep(outage_s)
    assert proc.proc.poll() is None, "the service gave up while the broker was away"
    assert proc.read_status()["connected"] is False
    broker.start_again()
    t_up = time.monotonic()
    proc.wait_for(lambda st: st.get("connected"), 120)
    reconnect_s = time.monotonic() - t_up
    pub.join()
    final = drain_and_stop(proc)

    _check_outcome(settings, plan, [final], figures)
    figures.add("broker absent at start", absent_s, "s", f"{retries} connection attempts logged")
    figures.add("first connect after broker up", first_connect_s, "s")
    figures.add("broker outage mid-run", outage_s, "s")
    figures.add("reconnect after broker back", reconnect_s, "s", "backoff 1 s doubling, 10 s cap")
