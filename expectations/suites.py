"""One GX 1.x expectation suite per feed, built in code from the reference data.

Every expectation carries ``meta``: ``name`` (what ``failed_expectations`` and
``dq.flagged_readings`` record), ``column`` (the reading column a failure is about, for the
observed value), ``level`` (``row``: a failure flags the reading; ``batch``: a batch-level
result that flags nothing), ``scope`` and ``invalidates`` and, for bounds, ``source``.

What a row-level failure invalidates is declared here, per expectation (issue 9 item 3;
GB 3095 validity is per pollutant):

- ``scope = "reading"``: the whole reading is invalid (``is_valid = false``): the natural key
  is missing, the site or device is not in the catalogue, observed_at lies in the future, or
  the device reported a fault flag (maintenance, calibration, power_fail).
- ``scope = "value"``: only the measurement(s) in ``invalidates`` are invalid: plausibility
  ranges, pH, rain and volume rates, flat-lines and spikes invalidate their own column;
  ``pm25_not_above_pm10`` both PM values; ``volume_occupancy_consistent`` volume and
  occupancy. The other values of the reading still count.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

from common.catalogue import Catalogue
from expectations.reference import FeedRules
from ingestion.schema import VALUE_COLUMNS

# Key of the suite version in the GX suite's meta (and so in each result's suite meta).
SUITE_VERSION_META = "citypipe_suite_version"

# The only suite parameter: catalogue sites expected to report within a batch's time span.
EXPECTED_SITES_PARAM = "expected_sites"


@dataclass(frozen=True)
class Spec:
    """One expectation before it becomes a GX object (kept plain so it can be tested and listed)."""

    name: str
    gx_type: str  # class name in gx.expectations
    kwargs: dict[str, Any]
    column: str | None
    level: str = "row"
    why: str = ""
    # "rows": validated on the batch (one row per reading); "sites": on the per-site frame
    # (one row per catalogue site: completeness and freshness over the batch).
    frame: str = "rows"
    # What a row-level failure invalidates: "reading" (the whole reading) or "value" (only
    # the value columns in ``invalidates``, sorted).
    scope: str = "reading"
    invalidates: tuple[str, ...] = ()


SCOPES = ("reading", "value")


def value_scope(feed: str, *columns: str) -> dict[str, Any]:
    """Spec arguments for an expectation about measurements: a failure invalidates only these
    value columns of the feed (an unknown column is a programming error, not a silent no-op)."""
    known = set(VALUE_COLUMNS[feed].values())
    unknown = [c for c in columns if c not in known]
    if unknown or not columns:
        raise ValueError(f"{feed}: {unknown or 'no columns'} are not value columns of the feed")
    return {"scope": "value", "invalidates": tuple(sorted(set(columns)))}


def suite_name(feed: str) -> str:
    return f"citypipe_{feed}"


def specs(feed: str, rules: FeedRules, catalogue: Catalogue, future_tolerance_s: int) -> list[Spec]:
    sites = sorted(s.site_id for s in catalogue.by_feed(feed))
    keys = ["site_id", "device_id", "observed_at"] + (["lane"] if feed == "traffic" else [])
    out = [
        Spec(f"{k}_not_null", "ExpectColumnValuesToNotBeNull", {"column": k}, k, why="natural key")
        for k in keys
    ]
    out += [
        Spec(
            "site_in_catalogue",
            "ExpectColumnValuesToBeInSet",
            {"column": "site_id", "value_set": sites},
            "site_id",
            why="site must be in the version-controlled catalogue of this feed",
        ),
        Spec(
            "device_in_catalogue",
            "ExpectColumnValuesToBeInSet",
            {"column": "dq_device_known", "value_set": [True]},
            "device_id",
            why="device must be one of the site's devices in the catalogue",
        ),
        Spec(
            "observed_at_not_future",
            "ExpectColumnValuesToBeBetween",
            {"column": "dq_future_s", "max_value": future_tolerance_s},
            "observed_at",
            why="observed_at ahead of the validation run by more than the clock-skew allowance",
        ),
        Spec(
            "device_flag",
            "ExpectColumnValuesToBeInSet",
            {"column": "flags", "value_set": [""]},
            "flags",
            why="the device reported maintenance, calibration or power_fail",
        ),
    ]
    for b in rules.bounds:
        kw: dict[str, Any] = {"column": b.column}
        if b.min is not None:
            kw["min_value"] = b.min
        if b.max is not None:
            kw["max_value"] = b.max
        column = {"dq_rain_mmh": "rain_mm", "dq_volume_vph_lane": "volume_veh"}.get(
            b.column, b.column
        )
        out.append(
            Spec(
                b.check,
                "ExpectColumnValuesToBeBetween",
                kw,
                column,
                why=b.source,
                **value_scope(feed, column),
            )
        )
    if feed == "air":
        out.append(
            Spec(
                "pm25_not_above_pm10",
                "ExpectColumnValuesToBeInSet",
                {"column": "dq_pm25_le_pm10", "value_set": [True]},
                "pm25_ugm3",
                why="PM2.5 is a fraction of PM10",
                # which of the two analysers is wrong is unknown: neither value counts
                **value_scope(feed, "pm25_ugm3", "pm10_ugm3"),
            )
        )
    if feed == "traffic":
        out.append(
            Spec(
                "volume_occupancy_consistent",
                "ExpectColumnValuesToBeInSet",
                {"column": "dq_volume_occupancy_ok", "value_set": [True]},
                "occupancy_pct",
                why="vehicles passed but the loop was never occupied, or none passed but it was",
                **value_scope(feed, "volume_veh", "occupancy_pct"),
            )
        )
    for col, p in sorted(rules.rule("flatline").items()):
        n = int(p.get("n", 0))
        if n > 1:
            out.append(
                Spec(
                    f"flatline_{col}",
                    "ExpectColumnValuesToBeBetween",
                    {"column": f"dq_flat_{col}", "max_value": n - 1},
                    col,
                    why=f"same value {n} times in a row for one device",
                    **value_scope(feed, col),
                )
            )
    for col, p in sorted(rules.rule("spike").items()):
        out.append(
            Spec(
                f"spike_{col}",
                "ExpectColumnValuesToBeInSet",
                {"column": f"dq_nospike_{col}", "value_set": [True]},
                col,
                why=f"above {p.get('k')}x the rolling median of the previous "
                f"{int(p.get('window', 0))} readings",
                **value_scope(feed, col),
            )
        )
    out.append(
        Spec(
            "sites_reporting",
            "ExpectColumnDistinctValuesToContainSet",
            {"column": "site_id", "value_set": {"$PARAMETER": EXPECTED_SITES_PARAM}},
            "site_id",
            level="batch",
            why="every site whose period fits the batch's time span sent something (silent sites)",
        )
    )
    min_ratio = rules.param("site_completeness", "site_id", "min_ratio", 0.0)
    if min_ratio > 0:
        out.append(
            Spec(
                "site_completeness",
                "ExpectColumnValuesToBeBetween",
                {"column": "site_completeness_ratio", "min_value": min_ratio},
                "site_id",
                level="batch",
                why=f"each site whose period fits the batch's span sent at least {min_ratio:g} of "
                "its expected readings (devices x lanes x span / period)",
                frame="sites",
            )
        )
    max_lag = rules.param("site_freshness", "site_id", "max_lag_s", 0.0)
    if max_lag > 0:
        out.append(
            Spec(
                "site_freshness",
                "ExpectColumnValuesToBeBetween",
                {"column": "site_lag_s", "max_value": max_lag},
                "site_id",
                level="batch",
                why=f"each reporting site's newest reading is at most {max_lag:g} s older than "
                "the validation run",
                frame="sites",
            )
        )
    return out


def suite_version(feed: str, spec_list: list[Spec], rules: FeedRules) -> str:
    """sha256 of the rules a validation used: every expectation (type, kwargs, column, level)
    and every bound and rule parameter in force (with source and valid_from; some parameters
    only shape derived columns, so the specs alone would miss them). Same rules, same hash."""
    doc = {
        "feed": feed,
        "specs": [
            {
                "name": s.name,
                "type": s.gx_type,
                "kwargs": s.kwargs,
                "column": s.column,
                "level": s.level,
                "scope": s.scope,
                "invalidates": list(s.invalidates),
            }
            for s in spec_list
        ],
        "bounds": sorted((asdict(b) for b in rules.bounds), key=lambda b: b["check"]),
        "params": rules.params,
    }
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def build_suite(feed: str, spec_list: list[Spec], version: str | None = None) -> Any:
    """The GX ExpectationSuite for a feed (GX imported here: heavy), its version in meta."""
    import great_expectations as gx

    suite_meta = {SUITE_VERSION_META: version} if version else None
    suite = gx.ExpectationSuite(name=suite_name(feed), meta=suite_meta)
    for s in spec_list:
        cls = getattr(gx.expectations, s.gx_type)
        meta: dict[str, Any] = {
            "name": s.name,
            "column": s.column,
            "level": s.level,
            "why": s.why,
        }
        if s.level == "row":  # batch-level results flag nothing, so invalidate nothing
            meta.update(scope=s.scope, invalidates=list(s.invalidates))
        suite.add_expectation(cls(**s.kwargs, meta=meta))
    return suite
