"""The published terms of the MQTT feed contract v1 (docs/feeds.md): version, reason codes,
flags, directions and limits.

They are the base both sides of the wire share: the parser (ingestion/) enforces them and the
simulator (simulator/), which stands in for the sensors, produces messages within them.
"""

from __future__ import annotations

CONTRACT_VERSION = "v1"

REASONS: dict[str, str] = {
    # Whole-message reasons (one record, reading_index null).
    "too_large": "payload larger than the configured limit (default 256 KiB); checked before decoding",
    "not_utf8": "payload is not valid UTF-8",
    "too_deep": "JSON nested deeper than the contract allows (deep-nesting attack)",
    "not_json": "payload is not valid JSON",
    "bad_topic": "topic is not city/{city_id}/{feed}/{site_id}",
    "wrong_city": "topic's city_id is not this deployment's city",
    "unknown_feed": "topic's feed is not air, water, waterlogging or traffic",
    "not_object": "payload (or a batch element) is not a JSON object",
    "empty_batch": "payload is an empty JSON array",
    "batch_too_large": "batch holds more readings than the limit",
    "too_many_dates": "a batch's readings span more local dates than the limit (default 31)",
    # Per-reading reasons (reading_index set inside a batch).
    "missing_field": "a required field is absent",
    "wrong_type": "a field has the wrong JSON type (e.g. a string or bool where an integer belongs)",
    "unknown_schema": "schema is not one of air/v1, water/v1, waterlogging/v1, traffic/v1",
    "schema_mismatch": "schema names a different feed than the topic",
    "unknown_site": "site_id is not in the site catalogue for this feed",
    "site_mismatch": "site_id differs from the topic's site",
    "bad_device": "device_id is empty, blank, longer than 64 characters or not printable text",
    "negative_seq": "seq is below zero",
    "bad_period": "period_s is not between 1 and 86400 seconds",
    "period_mismatch": "period_s differs from the site's period_s in the catalogue",
    "bad_timestamp": "observed_at is not an RFC 3339 date-time (docs/feeds.md, Timestamps)",
    "naive_timestamp": "observed_at has no UTC offset",
    "too_old": "observed_at is before the site's valid_from (or CITYPIPE_OLDEST_OBSERVED_AT)",
    "future_timestamp": "observed_at is further in the future than the tolerance (default 300 s)",
    "bad_number": "a value is not a finite number or null (string, bool, NaN, Infinity, out of range)",
    "no_values": "values is an empty object: the reading measures nothing",
    "duplicate_key": "an object names the same key twice (RFC 8259 leaves the winner undefined)",
    "unknown_field": "a key that the contract does not define (top level, values or units)",
    "unknown_unit": "a unit that is neither the canonical unit nor an allowed alternative",
    "bad_flag": "flags holds something other than maintenance, calibration, power_fail",
    "bad_lane": "lane is below 1 or above the detector's lane count",
    "bad_direction": "direction is not inbound or outbound",
    "lane_not_allowed": "lane or direction given on a non-traffic feed",
    "internal_error": "the parser failed unexpectedly (a bug: the detail holds the exception)",
}

FLAGS = frozenset({"maintenance", "calibration", "power_fail"})
DIRECTIONS = frozenset({"inbound", "outbound"})
MAX_DEPTH = 16  # a valid batch is 3 deep (array > reading > values/units/flags)
MAX_BATCH = 1000
MAX_DEVICE_ID = 64
MAX_PERIOD_S = 86400
MAX_DATES = 31  # local dates one message may touch: one landing file per date, flush time grows
