"""The alert rules as pure code: an in-process state machine per (kind, site).

Nothing here touches MQTT, files or the clock: ``Engine.observe(reading)`` and
``Engine.tick(now)`` return the alert changes (raise, level up, level down, clear) that the
service then stores and publishes. Kinds (docs/alerts.md):

- ``waterlogging``: depth above 15 / 25 / 40 cm (per point from the catalogue);
- ``aqi``: hourly AQI of an assessment station above 200 (and 300), evaluated when the hour closes;
- ``dissolved_oxygen``: river DO below 2 mg/L;
- ``silent``: no reading from a site for three of its periods;
- ``flatline``: a device's channel repeating the same value n times (the validation layer's rule).

Level rules (``LevelMachine``) are debounced and have hysteresis: a level is entered after
``raise_after_n`` consecutive readings beyond its threshold; it is left (down a level, or cleared)
only after ``clear_after_n`` consecutive readings back past the threshold *minus the margin*
(plus, for a "below" rule), so a value oscillating around a threshold never flaps.

A reading does not count for any rule but ``silent`` when the device flags it (maintenance,
calibration, power_fail); a value outside the validation layer's plausibility bounds, or null,
does not count for its own rules. Readings older than the last one of the same device are
ignored by the stateful rules (out of order, re-delivered).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo

from alerts import aqi as aqi_mod
from alerts import reference as ref

if TYPE_CHECKING:
    from common.catalogue import Catalogue, Site

Action = Literal["raise", "upgrade", "downgrade", "clear"]

# Unit of each value column the rules read (the landing columns carry their unit in the name).
UNITS = {
    "depth_cm": "cm",
    "do_mgl": "mg/L",
    "ph": "pH",
    "conductivity_uscm": "µS/cm",
    "pm25_ugm3": "µg/m³",
    "pm10_ugm3": "µg/m³",
    "so2_ugm3": "µg/m³",
    "no2_ugm3": "µg/m³",
    "o3_ugm3": "µg/m³",
    "co_mgm3": "mg/m³",
    "speed_kmh": "km/h",
}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def stamp(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def iso(ts: datetime | None) -> str | None:
    """UTC ISO 8601 with milliseconds and Z: one fixed width, so the text sorts as the time."""
    if ts is None:
        return None
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Observation:
    """One accepted reading as the rules see it (values in canonical units, UTC times)."""

    feed: str
    site_id: str
    device_id: str
    observed_at: datetime
    period_s: int
    values: dict[str, float | None]
    flags: str
    received_at: datetime
    lane: int | None = None  # traffic: the lanes of a detector share its device id

    @property
    def channel_key(self) -> str:
        """The device (and lane): one series of readings in time order."""
        return self.device_id if self.lane is None else f"{self.device_id}#{self.lane}"


@dataclass(frozen=True)
class Alert:
    """One alert episode of (kind, site), from raise to clear; the id stays across level changes."""

    id: str
    kind: str
    site_id: str
    level: str
    level_no: int
    value: float
    unit: str
    threshold: float
    started_at: datetime
    updated_at: datetime
    cleared_at: datetime | None = None
    peak_value: float | None = None
    channel: str | None = None

    @property
    def active(self) -> bool:
        return self.cleared_at is None

    def payload(self) -> dict[str, object]:
        """The retained MQTT message (docs/alerts.md)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "level": self.level,
            "level_no": self.level_no,
            "site_id": self.site_id,
            "value": self.value,
            "unit": self.unit,
            "threshold": self.threshold,
            "started_at": iso(self.started_at),
            "updated_at": iso(self.updated_at),
            "cleared_at": iso(self.cleared_at),
            "peak_value": self.peak_value,
            "channel": self.channel,
        }


@dataclass(frozen=True)
class Change:
    action: Action
    alert: Alert


# ---------------------------------------------------------------------- one level rule


@dataclass(frozen=True)
class Level:
    no: int  # 1, 2, ... ascending severity
    name: str
    threshold: float
    margin: float


class LevelMachine:
    """Debounce and hysteresis over ascending levels of one (kind, site).

    ``step(value, at)`` returns the new level number when it changes (0 = cleared), else None.
    ``started_at`` is the first reading of the run that raised the alert.
    """

    def __init__(self, levels: list[Level], direction: str, raise_n: int, clear_n: int) -> None:
        self.levels = sorted(levels, key=lambda lv: lv.no)
        self.sign = 1.0 if direction == "above" else -1.0
        self.raise_n = max(1, raise_n)
        self.clear_n = max(1, clear_n)
        self.level = 0
        self.started_at: datetime | None = None
        self._up = [0] * len(self.levels)
        self._up_from: list[datetime | None] = [None] * len(self.levels)
        self._down = 0

    def _beyond(self, value: float, lv: Level) -> bool:
        return self.sign * (value - lv.threshold) > 0

    def _holds(self, value: float, lv: Level) -> bool:
        # Still inside the level's hysteresis band: not yet back to threshold - margin ("above"
        # rules; threshold + margin for "below" rules). A value exactly there is back.
        return self.sign * (value - (lv.threshold - self.sign * lv.margin)) > 0

    def step(self, value: float, at: datetime) -> int | None:
        for i, lv in enumerate(self.levels):
            if self._beyond(value, lv):
                if self._up[i] == 0:
                    self._up_from[i] = at
                self._up[i] += 1
            else:
                self._up[i] = 0
        up = max(
            (lv.no for i, lv in enumerate(self.levels) if self._up[i] >= self.raise_n), default=0
        )
        if up > self.level:
            if self.level == 0:
                self.started_at = self._up_from[0] or at
            self.level = up
            self._down = 0
            return up
        if self.level == 0:
            return None
        hold = max((lv.no for lv in self.levels if self._holds(value, lv)), default=0)
        if hold >= self.level:
            self._down = 0
            return None
        self._down += 1
        if self._down < self.clear_n:
            return None
        self._down = 0
        self.level = hold
        if hold == 0:
            self.started_at = None
        return hold

    def restore(self, level_no: int, started_at: datetime | None) -> None:
        self.level = level_no
        self.started_at = started_at

    def counters(self) -> tuple[object, ...]:
        """The debounce state (for a checkpoint)."""
        return (self.level, self.started_at, list(self._up), list(self._up_from), self._down)

    def load_counters(self, state: tuple[object, ...]) -> bool:
        """Take back ``counters()``; False (nothing changed) if the levels no longer match."""
        level, started_at, up, up_from, down = state
        if not isinstance(up, list) or len(up) != len(self.levels):
            return False
        self.level, self.started_at = level, started_at  # type: ignore[assignment]
        self._up, self._up_from, self._down = up, up_from, down  # type: ignore[assignment]
        return True


# ---------------------------------------------------------------------- the engine


@dataclass
class _LevelRule:
    kind: str
    column: str
    unit: str
    machine: LevelMachine
    peak: float | None = None


@dataclass
class _Hour:
    # Per pollutant: exact sum and count of the valid readings (the mean is sum / count), and
    # the minutes they covered (validity: >= 45 of the hour).
    sums: dict[str, Fraction] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    minutes: dict[str, set[int]] = field(default_factory=dict)


@dataclass
class _AqiSite:
    rule: _LevelRule
    hours: dict[datetime, _Hour] = field(default_factory=dict)
    closed_until: datetime | None = None  # hours ending at or before this are closed
    so2_history: deque[tuple[datetime, Fraction | None]] = field(
        default_factory=lambda: deque(maxlen=24)
    )


@dataclass
class _Run:
    value: float
    n: int
    since: datetime


def _attr_matches(site: Site, attr: str, want: str) -> bool:
    have = site.get(attr)
    if isinstance(have, bool):
        have = "true" if have else "false"
    return have is not None and str(have) == want


def hour_end(ts: datetime) -> datetime:
    """End of the clock hour holding the period that ends at ``ts`` (an hour's value is stamped
    with its end; a reading stamped 09:00 belongs to the hour labelled 09:00)."""
    base = ts.replace(minute=0, second=0, microsecond=0)
    return base if base == ts else base + timedelta(hours=1)


class Engine:
    """Every rule of every catalogue site; feed it readings and clock ticks."""

    def __init__(
        self,
        catalogue: Catalogue,
        reference_dir: Path,
        *,
        now: datetime,
        timezone: str = "Asia/Shanghai",
        on: date | None = None,
    ) -> None:
        on = on or now.astimezone(ZoneInfo(timezone)).date()
        self.tz = ZoneInfo(timezone)
        self.catalogue = catalogue
        self.thresholds = ref.thresholds(reference_dir, on)
        params = ref.params(reference_dir, on)
        self.hour_close_grace = timedelta(seconds=params.get("aqi_hour_close_grace_s", 120))
        self.bounds = ref.plausibility(reference_dir, on)
        self.rule_sets = aqi_mod.load_rule_sets(reference_dir)
        self.open: dict[tuple[str, str], Alert] = {}
        self.levels: dict[tuple[str, str], _LevelRule] = {}  # (kind, site)
        self.aqi: dict[str, _AqiSite] = {}
        self.flat_rules: dict[str, list[ref.FlatLine]] = {}
        for fl in ref.flatline(reference_dir, on):
            self.flat_rules.setdefault(fl.feed, []).append(fl)
        self.runs: dict[tuple[str, str, str], _Run] = {}  # (site, device, column)
        self.flat: dict[str, dict[tuple[str, str], _Run]] = {}  # site -> flat channels
        self.last_seen: dict[str, datetime] = {}  # site -> received_at of its newest reading
        self.last_observed: dict[tuple[str, str], datetime] = {}  # (site, device)
        silent = [t for t in self.thresholds if t.kind == "silent"]
        self.silent_periods = silent[0].threshold if silent and silent[0].threshold else None
        flat_t = [t for t in self.thresholds if t.kind == "flatline"]
        self.flatline_on = bool(flat_t)
        by_kind: dict[str, list[ref.Threshold]] = {}
        for t in self.thresholds:
            if t.column is not None:
                by_kind.setdefault(t.kind, []).append(t)
        for site in catalogue.sites.values():
            self.last_seen[site.site_id] = now
            for kind, rows in by_kind.items():
                rows = [
                    t
                    for t in rows
                    if t.feed == site.feed
                    and all(_attr_matches(site, a, v) for a, v in t.applies_to)
                ]
                if not rows:
                    continue
                levels = []
                for t in rows:
                    thr = site.get(t.site_column) if t.site_column else None
                    value = float(thr) if isinstance(thr, int | float) else t.threshold
                    if value is None:
                        continue
                    levels.append(Level(t.level_no, t.level, value, t.margin))
                first = rows[0]
                rule = _LevelRule(
                    kind,
                    first.column or "",
                    first.unit,
                    LevelMachine(levels, first.direction, first.raise_after_n, first.clear_after_n),
                )
                if first.column == "aqi":
                    self.aqi[site.site_id] = _AqiSite(rule)
                else:
                    self.levels[(kind, site.site_id)] = rule

    # ------------------------------------------------------------------ restart

    def restore(self, alerts: list[Alert]) -> None:
        """Take back the open alerts of the store after a restart."""
        for a in alerts:
            if not a.active:
                continue
            self.open[(a.kind, a.site_id)] = a
            rule = self.levels.get((a.kind, a.site_id))
            if rule is None and a.kind == "aqi" and a.site_id in self.aqi:
                rule = self.aqi[a.site_id].rule
            if rule is not None:
                rule.machine.restore(a.level_no, a.started_at)
                rule.peak = a.peak_value
            if a.kind == "flatline" and a.channel and "/" in a.channel:
                device, column = a.channel.split("/", 1)
                run = self.runs.get((a.site_id, device, column))
                if run is None or run.value != a.value:  # no checkpoint of this run
                    run = _Run(a.value, int(a.threshold), a.started_at)
                    self.runs[(a.site_id, device, column)] = run
                self.flat.setdefault(a.site_id, {})[(device, column)] = run

    # ------------------------------------------------------------------ checkpoint

    CHECKPOINT_VERSION = 2

    def checkpoint(self) -> dict[str, object]:
        """Everything a restart would otherwise lose, as plain data: debounce counts and peaks,
        the AQI hours in progress, flat-line runs, per-device order, silence clocks. The open
        alerts themselves are the store's ``alerts`` rows."""
        machines = {k: (r.machine.counters(), r.peak) for k, r in self.levels.items()}
        aqi = {
            site: (
                st.rule.machine.counters(),
                st.rule.peak,
                {end: (h.sums, h.counts, h.minutes) for end, h in st.hours.items()},
                st.closed_until,
                list(st.so2_history),
            )
            for site, st in self.aqi.items()
        }
        return {
            "version": self.CHECKPOINT_VERSION,
            "machines": machines,
            "aqi": aqi,
            "runs": {k: (r.value, r.n, r.since) for k, r in self.runs.items()},
            "flat": {site: sorted(chs) for site, chs in self.flat.items() if chs},
            "last_seen": dict(self.last_seen),
            "last_observed": dict(self.last_observed),
        }

    def load_checkpoint(self, state: dict[str, object], open_alerts: list[Alert]) -> None:
        """Take back a checkpoint, then the store's open alerts, which decide every rule's level
        (the checkpoint may be one batch older than the alerts rows)."""
        if state.get("version") != self.CHECKPOINT_VERSION:
            self.restore(open_alerts)
            return
        machines: dict[tuple[str, str], tuple[tuple[object, ...], float | None]]
        machines = state["machines"]  # type: ignore[assignment]
        for key, (counters, peak) in machines.items():
            rule = self.levels.get(key)
            if rule is not None and rule.machine.load_counters(counters):
                rule.peak = peak
        aqi: dict[str, tuple[Any, ...]] = state["aqi"]  # type: ignore[assignment]
        for site, (counters, peak, hours, closed_until, so2) in aqi.items():
            st = self.aqi.get(site)
            if st is None:
                continue
            if st.rule.machine.load_counters(counters):
                st.rule.peak = peak
            st.hours = {end: _Hour(*h) for end, h in hours.items()}
            st.closed_until = closed_until
            st.so2_history.extend(so2)
        runs: dict[tuple[str, str, str], tuple[float, int, datetime]]
        runs = state["runs"]  # type: ignore[assignment]
        self.runs = {k: _Run(*v) for k, v in runs.items()}
        flat: dict[str, list[tuple[str, str]]] = state["flat"]  # type: ignore[assignment]
        for site, channels in flat.items():
            self.flat[site] = {
                ch: self.runs[(site, *ch)] for ch in channels if (site, *ch) in self.runs
            }
        self.last_seen.update(state["last_seen"])  # type: ignore[call-overload]
        self.last_observed.update(state["last_observed"])  # type: ignore[call-overload]
        # The store is authoritative for what is open: a level without an open alert is reset.
        open_keys = {(a.kind, a.site_id) for a in open_alerts if a.active}
        for key, rule in [
            *self.levels.items(),
            *((("aqi", s), st.rule) for s, st in self.aqi.items()),
        ]:
            if key not in open_keys and rule.machine.level:
                rule.machine.restore(0, None)
                rule.peak = None
        self.restore(open_alerts)

    # ------------------------------------------------------------------ input

    def valid(self, feed: str, column: str, value: float | None) -> bool:
        if value is None or not math.isfinite(value):
            return False
        for b in self.bounds.get(feed, {}).get(column, ()):
            if (b.min is not None and value < b.min) or (b.max is not None and value > b.max):
                return False
        return True

    def observe(self, obs: Observation) -> list[Change]:
        out: list[Change] = []
        site = obs.site_id
        if obs.received_at > self.last_seen.get(site, EPOCH):
            self.last_seen[site] = obs.received_at
        silent = self.open.get(("silent", site))
        if silent is not None:
            out.append(self._clear(silent, obs.received_at, obs.received_at, None))
        key = (site, obs.channel_key)
        last = self.last_observed.get(key)
        if last is not None and obs.observed_at <= last:
            return out  # out of order or re-delivered: the stateful rules have seen its time
        self.last_observed[key] = obs.observed_at
        if obs.flags:
            return out  # maintenance, calibration, power_fail: not a measurement to alert on
        for (kind, s), rule in self._site_levels(site):
            v = obs.values.get(rule.column)
            if self.valid(obs.feed, rule.column, v):
                assert v is not None
                out.extend(self._step(kind, s, rule, v, obs.observed_at, None))
        if site in self.aqi:
            out.extend(self._air(self.aqi[site], obs))
        if self.flatline_on:
            out.extend(self._flatline(obs))
        return out

    def tick(self, now: datetime) -> list[Change]:
        """Clock-driven rules: silent sites, and hours to close for stations that went quiet."""
        out: list[Change] = []
        if self.silent_periods is not None:
            for site in self.catalogue.sites.values():
                if ("silent", site.site_id) in self.open:
                    continue
                seen = self.last_seen.get(site.site_id, now)
                limit = self.silent_periods * site.period_s
                quiet = (now - seen).total_seconds()
                if quiet > limit:
                    alert = Alert(
                        id=f"silent:{site.site_id}:{stamp(seen)}",
                        kind="silent",
                        site_id=site.site_id,
                        level="silent",
                        level_no=1,
                        value=round(quiet, 1),
                        unit="s",
                        threshold=limit,
                        started_at=seen,
                        updated_at=now,
                    )
                    self.open[("silent", site.site_id)] = alert
                    out.append(Change("raise", alert))
        for site_id, st in self.aqi.items():
            seen = self.last_seen.get(site_id, now)
            if now - seen < self.hour_close_grace:
                continue
            for end in sorted(st.hours):
                if end + self.hour_close_grace <= now:
                    out.extend(self._close_hour(site_id, st, end))
        return out

    # ------------------------------------------------------------------ level rules

    def _site_levels(self, site: str) -> list[tuple[tuple[str, str], _LevelRule]]:
        return [(k, r) for k, r in self.levels.items() if k[1] == site]

    def _step(
        self,
        kind: str,
        site: str,
        rule: _LevelRule,
        value: float,
        at: datetime,
        channel: str | None,
    ) -> list[Change]:
        m = rule.machine
        if m.level > 0 and (rule.peak is None or m.sign * (value - rule.peak) > 0):
            rule.peak = value
            current = self.open.get((kind, site))
            if current is not None:
                self.open[(kind, site)] = replace(current, peak_value=value)
        new = m.step(value, at)
        if new is None:
            return []
        current = self.open.get((kind, site))
        if new == 0:
            rule.peak = None
            return [self._clear(current, at, at, value)] if current is not None else []
        lv = next(lv for lv in m.levels if lv.no == new)
        if current is None:
            rule.peak = value
            started = m.started_at or at
            alert = Alert(
                id=f"{kind}:{site}:{stamp(started)}",
                kind=kind,
                site_id=site,
                level=lv.name,
                level_no=lv.no,
                value=value,
                unit=rule.unit,
                threshold=lv.threshold,
                started_at=started,
                updated_at=at,
                peak_value=value,
                channel=channel,
            )
            self.open[(kind, site)] = alert
            return [Change("raise", alert)]
        action: Action = "upgrade" if new > current.level_no else "downgrade"
        alert = replace(
            current,
            level=lv.name,
            level_no=lv.no,
            value=value,
            threshold=lv.threshold,
            updated_at=at,
            peak_value=rule.peak,
            channel=channel if channel is not None else current.channel,
        )
        self.open[(kind, site)] = alert
        return [Change(action, alert)]

    def _clear(self, alert: Alert, at: datetime, updated: datetime, value: float | None) -> Change:
        del self.open[(alert.kind, alert.site_id)]
        done = replace(
            alert,
            cleared_at=at,
            updated_at=updated,
            value=alert.value if value is None else value,
        )
        return Change("clear", done)

    # ------------------------------------------------------------------ hourly AQI

    def _air(self, st: _AqiSite, obs: Observation) -> list[Change]:
        end = hour_end(obs.observed_at)
        out: list[Change] = []
        if st.closed_until is not None and end <= st.closed_until:
            return out  # a late reading of an hour already evaluated
        for earlier in sorted(h for h in st.hours if h < end):
            out.extend(self._close_hour(obs.site_id, st, earlier))
        hour = st.hours.setdefault(end, _Hour())
        start = end - timedelta(hours=1)
        span_from = max(obs.observed_at - timedelta(seconds=obs.period_s), start)
        first_min = math.floor((span_from - EPOCH).total_seconds() / 60)
        last_min = math.ceil((obs.observed_at - EPOCH).total_seconds() / 60)
        covered = range(first_min, max(last_min, first_min + 1))
        for pollutant, column in aqi_mod.COLUMN.items():
            v = obs.values.get(column)
            if not self.valid("air", column, v):
                continue
            assert v is not None
            hour.sums[pollutant] = hour.sums.get(pollutant, Fraction(0)) + aqi_mod.as_fraction(v)
            hour.counts[pollutant] = hour.counts.get(pollutant, 0) + 1
            hour.minutes.setdefault(pollutant, set()).update(covered)
        return out

    def _close_hour(self, site: str, st: _AqiSite, end: datetime) -> list[Change]:
        hour = st.hours.pop(end)
        st.closed_until = end if st.closed_until is None else max(st.closed_until, end)
        day = (end - timedelta(microseconds=1)).astimezone(self.tz).date()
        rs = aqi_mod.rule_set_for(self.rule_sets, day)
        means: dict[str, Fraction | None] = {}
        for p in aqi_mod.POLLUTANTS:
            ok = len(hour.minutes.get(p, ())) >= rs.min_minutes_per_hour
            means[f"{p}_1h"] = aqi_mod.mean_of(hour.sums[p], hour.counts[p]) if ok else None
        so2 = [v for t, v in st.so2_history if t > end - timedelta(hours=24) and v is not None]
        st.so2_history.append((end, means["so2_1h"]))
        if means["so2_1h"] is not None:
            so2.append(means["so2_1h"])
        if len(so2) >= rs.min_hours_per_24h_moving:
            means["so2_24h_moving"] = aqi_mod.mean(so2)
        result = aqi_mod.hourly_aqi(rs, means)
        if result.aqi is None:
            return []
        return self._step(
            "aqi", site, st.rule, float(result.aqi), end, ",".join(result.primary) or None
        )

    # ------------------------------------------------------------------ flat lines

    def _flatline(self, obs: Observation) -> list[Change]:
        rules = self.flat_rules.get(obs.feed)
        if not rules:
            return []
        site = obs.site_id
        flat = self.flat.setdefault(site, {})
        was = bool(flat)
        first_new: tuple[str, _Run] | None = None
        for fl in rules:
            v = obs.values.get(fl.column)
            device = obs.channel_key
            key = (site, device, fl.column)
            if v is None:
                self.runs.pop(key, None)
                flat.pop((device, fl.column), None)
                continue
            if not self.valid(obs.feed, fl.column, v):
                continue
            if fl.ignore_zero and v == 0:
                self.runs.pop(key, None)
                flat.pop((device, fl.column), None)
                continue
            run = self.runs.get(key)
            if run is not None and run.value == v:
                run.n += 1
            else:
                run = self.runs[key] = _Run(v, 1, obs.observed_at)
            if run.n >= fl.n:
                if (device, fl.column) not in flat and first_new is None:
                    first_new = (f"{device}/{fl.column}", run)
                flat[(device, fl.column)] = run
            else:
                flat.pop((device, fl.column), None)
        current = self.open.get(("flatline", site))
        if flat and not was and current is None and first_new is not None:
            channel, run = first_new
            column = channel.split("/", 1)[1]
            alert = Alert(
                id=f"flatline:{site}:{stamp(run.since)}",
                kind="flatline",
                site_id=site,
                level="flatline",
                level_no=1,
                value=run.value,
                unit=UNITS.get(column, ""),
                threshold=float(run.n),
                started_at=run.since,
                updated_at=obs.observed_at,
                channel=channel,
            )
            self.open[("flatline", site)] = alert
            return [Change("raise", alert)]
        if not flat and current is not None:
            return [self._clear(current, obs.observed_at, obs.observed_at, None)]
        return []
