"""The alert rules on simulated curves: rise, oscillation near a threshold (no flapping), clear."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta

import pytest

from alerts.rules import Change, Engine, Level, LevelMachine, Observation
from common.catalogue import Catalogue
from common.settings import REPO_ROOT

REF = REPO_ROOT / "reference"
T0 = datetime(2026, 7, 14, 2, 0, tzinfo=UTC)  # 10:00 in Wushan


def engine(catalogue: Catalogue) -> Engine:
    return Engine(catalogue, REF, now=T0)


def wl(k: int, depth: float | None, *, site: str = "WS-WLG-01", flags: str = "") -> Observation:
    at = T0 + timedelta(minutes=k)
    return Observation(
        "waterlogging",
        site,
        "WLG-0101",
        at,
        60,
        {"depth_cm": depth},
        flags,
        at + timedelta(seconds=1),
    )


def water(k: int, do: float, *, site: str = "WS-WAT-01", flags: str = "") -> Observation:
    at = T0 + timedelta(hours=4 * k)
    return Observation("water", site, "WQA-0101", at, 14400, {"do_mgl": do}, flags, at)


def feed(e: Engine, observations: list[Observation]) -> list[tuple[int, Change]]:
    out = []
    for i, o in enumerate(observations):
        out.extend((i, c) for c in e.observe(o))
    return [(i, c) for i, c in out if c.alert.kind != "silent"]


def actions(changes: list[tuple[int, Change]]) -> list[tuple[int, str, str]]:
    return [(i, c.action, c.alert.level) for i, c in changes]


def test_depth_rise_through_three_levels_and_clear(catalogue: Catalogue) -> None:
    # dry, rise 1 cm/min to 45 cm, hold, fall 2 cm/min to dry, stay dry
    curve = [0.0] * 5 + [float(d) for d in range(1, 46)] + [45.0] * 5
    curve += [float(d) for d in range(44, -1, -2)] + [0.0] * 15
    e = engine(catalogue)
    ch = feed(e, [wl(k, d) for k, d in enumerate(curve)])
    # 16 cm is the first reading above 15 (index 5 + 15); raise on the 3rd consecutive one.
    assert actions(ch)[:3] == [(22, "raise", "waterlogging"), (32, "upgrade", "closure"),
                               (47, "upgrade", "danger")]  # fmt: skip
    raised = ch[0][1].alert
    assert raised.started_at == T0 + timedelta(minutes=20)  # the first reading above 15
    assert raised.threshold == 15 and raised.unit == "cm" and raised.value == 18
    # Falling 2 cm/min: 10 readings after the first below 40-2 = 38 the depth is 18, still
    # inside level 1's band (> 15-2) but below 25-2: one step down to waterlogging, then clear.
    assert [(a, lv) for _, a, lv in actions(ch)[3:]] == [
        ("downgrade", "waterlogging"),
        ("clear", "waterlogging"),
    ]
    clear = ch[-1][1].alert
    assert clear.cleared_at is not None and clear.id == raised.id and clear.peak_value == 45
    assert e.open == {}


def test_depth_oscillating_around_a_threshold_does_not_flap(catalogue: Catalogue) -> None:
    # 14 / 16 alternating: never 3 consecutive readings above 15 -> nothing raised
    e = engine(catalogue)
    assert feed(e, [wl(k, 14.0 if k % 2 else 16.0) for k in range(60)]) == []
    # Raised, then oscillating 14.5 / 16 (inside the 2 cm margin): it stays raised, no clear.
    e = engine(catalogue)
    curve = [20.0] * 3 + [14.5 if k % 2 else 16.0 for k in range(60)]
    ch = feed(e, [wl(k, d) for k, d in enumerate(curve)])
    assert actions(ch) == [(2, "raise", "waterlogging")]
    # Oscillating 12 / 16 (across threshold - margin): a single 16 resets the clear count.
    curve = [12.0 if k % 2 else 16.0 for k in range(41)]
    assert feed(e, [wl(63 + k, d) for k, d in enumerate(curve)]) == []
    # 10 consecutive readings at or below 13 clear it.
    ch = feed(e, [wl(104 + k, 12.0) for k in range(10)])
    assert actions(ch) == [(9, "clear", "waterlogging")]


def test_flagged_missing_and_implausible_readings_raise_nothing(catalogue: Catalogue) -> None:
    e = engine(catalogue)
    obs = [wl(k, 50.0, flags="maintenance") for k in range(10)]
    obs += [wl(10 + k, 400.0) for k in range(10)]  # above the gauge's 300 cm range
    obs += [wl(20 + k, None) for k in range(10)]
    obs += [wl(30 + k, -5.0) for k in range(10)]
    assert feed(e, obs) == []
    # and they do not break a debounce run either: 2 good, 1 flagged, 1 good -> raised on the 4th
    ch = feed(e, [wl(40, 20.0), wl(41, 20.0), wl(42, 99.0, flags="calibration"), wl(43, 20.0)])
    assert actions(ch) == [(3, "raise", "waterlogging")]


def test_out_of_order_and_redelivered_readings_are_ignored(catalogue: Catalogue) -> None:
    e = engine(catalogue)
    assert feed(e, [wl(5, 20.0), wl(6, 20.0), wl(6, 20.0), wl(3, 20.0)]) == []
    assert actions(feed(e, [wl(7, 20.0)])) == [(0, "raise", "waterlogging")]


def test_per_point_thresholds_come_from_the_catalogue(catalogue: Catalogue) -> None:
    site = catalogue.sites["WS-WLG-01"]
    e = engine(catalogue)
    levels = e.levels[("waterlogging", "WS-WLG-01")].machine.levels
    assert [lv.threshold for lv in levels] == [
        site.get("waterlogging_cm"),
        site.get("closure_cm"),
        site.get("danger_cm"),
    ]
    assert all(lv.margin == 2 for lv in levels)


def test_do_curve_drop_oscillation_and_recovery(catalogue: Catalogue) -> None:
    e = engine(catalogue)
    # healthy, a drop below 2 (one result: not confirmed), recover, a real drop, oscillate
    # between 1.9 and 2.1 (inside the 0.2 margin), recover above 2.2 twice -> clear.
    curve = [7.5, 6.8, 1.8, 6.0, 5.0, 3.0, 1.9, 1.7, 1.5, 2.1, 1.9, 2.1, 1.9, 2.1, 2.5, 2.6, 6.0]
    ch = feed(e, [water(k, v) for k, v in enumerate(curve)])
    assert actions(ch) == [(7, "raise", "below_class_v"), (15, "clear", "below_class_v")]
    raised = ch[0][1].alert
    assert raised.kind == "dissolved_oxygen" and raised.threshold == 2 and raised.unit == "mg/L"
    assert raised.started_at == T0 + timedelta(hours=24)  # the first of the two low results
    assert ch[1][1].alert.peak_value == 1.5  # the lowest DO of the episode


def test_do_rule_applies_to_rivers_only(catalogue: Catalogue) -> None:
    e = engine(catalogue)
    rivers = {s for (k, s) in e.levels if k == "dissolved_oxygen"}
    expected = {
        s.site_id for s in catalogue.by_feed("water") if s.get("water_body_type") == "river"
    }
    assert rivers == expected and rivers
    lake = [s for s in catalogue.by_feed("water") if s.get("water_body_type") != "river"]
    for s in lake:
        assert feed(e, [water(k, 0.5, site=s.site_id) for k in range(5)]) == []


def test_level_machine_below_direction_with_margin() -> None:
    m = LevelMachine([Level(1, "low", 2.0, 0.2)], "below", raise_n=1, clear_n=1)
    steps = [m.step(v, T0) for v in (2.0, 1.99, 2.1, 2.19, 2.2, 2.21, 1.0)]
    # 2.0 is not below 2; 2.19 is still inside the margin; 2.2 = 2 + 0.2 is back.
    assert steps == [None, 1, None, None, 0, None, 1]


def silent_alerts(changes: list[Change]) -> list[tuple[str, str]]:
    return [(c.action, c.alert.site_id) for c in changes if c.alert.kind == "silent"]


def test_silent_after_three_periods_cleared_by_the_next_reading(catalogue: Catalogue) -> None:
    e = engine(catalogue)
    every = {s.site_id for s in catalogue.sites.values()}
    quiet = {s.site_id for s in catalogue.sites.values() if s.period_s == 60}
    # keep WS-WLG-01 alive each minute; nothing is silent before 3 periods
    for k in range(3):
        e.observe(wl(k, 0.0))
    assert silent_alerts(e.tick(T0 + timedelta(seconds=180))) == []
    raised = silent_alerts(e.tick(T0 + timedelta(seconds=181)))
    assert {s for _, s in raised} == quiet - {"WS-WLG-01"}
    # WS-WLG-01 last reported at T0+2min+1s: silent after 3 more minutes
    raised = silent_alerts(e.tick(T0 + timedelta(seconds=60 * 5 + 2)))
    assert raised == [("raise", "WS-WLG-01")]
    assert silent_alerts(e.observe(wl(6, 0.0))) == [("clear", "WS-WLG-01")]
    # water sections report every 4 h: silent after 12 h
    later = silent_alerts(e.tick(T0 + timedelta(hours=12, seconds=1)))
    assert {s for _, s in later} == (every - quiet) | {"WS-WLG-01"}


def test_flatline_uses_the_validation_rule(catalogue: Catalogue) -> None:
    e = engine(catalogue)
    n = next(f.n for f in e.flat_rules["water"] if f.column == "do_mgl")
    stuck = [water(k, 6.31) for k in range(n + 3)]
    ch = [c for o in stuck for c in e.observe(o) if c.alert.kind == "flatline"]
    assert [(c.action, c.alert.channel) for c in ch] == [("raise", "WQA-0101/do_mgl")]
    assert ch[0].alert.started_at == stuck[0].observed_at and ch[0].alert.threshold == n
    ch = [c for c in e.observe(water(n + 3, 6.5)) if c.alert.kind == "flatline"]
    assert [c.action for c in ch] == ["clear"]


def test_flatline_ignores_a_dry_road(catalogue: Catalogue) -> None:
    e = engine(catalogue)
    assert feed(e, [wl(k, 0.0) for k in range(400)]) == []


@pytest.mark.parametrize("kind", ["waterlogging", "dissolved_oxygen", "flatline"])
def test_open_alerts_survive_a_restart(catalogue: Catalogue, kind: str) -> None:
    first = engine(catalogue)
    if kind == "waterlogging":
        obs = [wl(k, 30.0) for k in range(3)]
        after, clearing = [wl(3 + k, 30.0) for k in range(5)], [wl(8 + k, 5.0) for k in range(10)]
    elif kind == "dissolved_oxygen":
        obs = [water(k, 1.0) for k in range(2)]
        after, clearing = (
            [water(2 + k, 1.0) for k in range(3)],
            [water(5 + k, 5.0) for k in range(2)],
        )
    else:
        obs = [water(k, 6.31) for k in range(12)]
        after, clearing = [water(12 + k, 6.31) for k in range(3)], [water(15, 6.0)]
    raised = [c.alert for o in obs for c in first.observe(o) if c.alert.kind == kind]
    assert len(raised) == 1
    second = engine(catalogue)
    second.restore(raised)
    assert [c for o in after for c in second.observe(o) if c.alert.kind == kind] == []
    done = [c for o in clearing for c in second.observe(o) if c.alert.kind == kind]
    assert [(c.action, c.alert.id) for c in done] == [("clear", raised[0].id)]


def test_traffic_lanes_are_separate_series(catalogue: Catalogue) -> None:
    e = engine(catalogue)
    site = catalogue.by_feed("traffic")[0]
    n = next(f.n for f in e.flat_rules["traffic"] if f.column == "speed_kmh")
    out = []
    for k in range(n):
        at = T0 + timedelta(minutes=5 * k)
        for lane, speed in ((1, 42.0), (2, 30.0 + k % 5)):  # lane 1 frozen, lane 2 moving
            obs = Observation("traffic", site.site_id, site.device_ids[0], at, 300,
                              {"speed_kmh": speed}, "", at, lane=lane)  # fmt: skip
            out += [c for c in e.observe(obs) if c.alert.kind == "flatline"]
    assert [(c.action, c.alert.channel) for c in out] == [
        ("raise", f"{site.device_ids[0]}#1/speed_kmh")
    ]


def test_a_checkpoint_keeps_debounce_counts_and_runs_across_a_restart(
    catalogue: Catalogue,
) -> None:
    first = engine(catalogue)
    assert feed(first, [wl(0, 20.0), wl(1, 20.0)]) == []  # two of the three readings
    stuck = [water(k, 6.31) for k in range(11)]  # one short of the flat-line n = 12
    assert [c for o in stuck for c in first.observe(o) if c.alert.kind == "flatline"] == []
    state = pickle.loads(pickle.dumps(first.checkpoint()))
    second = engine(catalogue)
    second.load_checkpoint(state, [])
    assert actions(feed(second, [wl(2, 20.0)])) == [(0, "raise", "waterlogging")]
    ch = [c for c in second.observe(water(11, 6.31)) if c.alert.kind == "flatline"]
    assert [c.action for c in ch] == ["raise"]
    # a reading the checkpoint has seen (a redelivery after a crash before the ack) is ignored
    assert feed(second, [wl(1, 20.0)]) == []


def test_the_store_decides_the_level_over_an_older_checkpoint(catalogue: Catalogue) -> None:
    first = engine(catalogue)
    state = first.checkpoint()  # taken before the raise (the crash came between the commits)
    raised = [c.alert for c in first.observe(wl(0, 30.0))] + [
        c.alert for k in (1, 2) for c in first.observe(wl(k, 30.0))
    ]
    second = engine(catalogue)
    second.load_checkpoint(state, raised)
    assert second.levels[("waterlogging", "WS-WLG-01")].machine.level == 2
    # and an alert cleared in the store is not open after a checkpoint that still had it
    state = first.checkpoint()
    third = engine(catalogue)
    third.load_checkpoint(state, [])
    assert third.levels[("waterlogging", "WS-WLG-01")].machine.level == 0 and third.open == {}
