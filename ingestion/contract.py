"""The MQTT feed contract v1 (docs/feeds.md): parse one MQTT message into landing rows or quarantine rows.

``ContractParser.parse(topic, payload, received_at)`` never raises. It returns a ``ParsedMessage``
holding one ``Reading`` per accepted reading (a row for ``ingestion.schema.landing_schema(feed)``,
values in canonical units) and one ``Rejection`` per quarantined record (a row for
``ingestion.schema.QUARANTINE_SCHEMA`` with a reason code from ``REASONS``).

Accounting unit is the *record*: a single-object message is one record, a batch (JSON array) of N
readings is N records, and a message that fails as a whole (bad topic, not JSON, too large, ...)
is exactly one record with one rejection.

The parser is on the hot path of ingest (tens of thousands of messages per second on two cores),
so it uses one ``json.loads``, plain dict lookups and per-feed tables computed once.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from hashlib import blake2b
from itertools import accumulate
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

# Re-exported: the parser's users read the contract's terms from it.
from common.contract import CONTRACT_VERSION as CONTRACT_VERSION
from common.contract import DIRECTIONS, MAX_BATCH, MAX_DATES, MAX_DEPTH, MAX_DEVICE_ID, MAX_PERIOD_S
from common.contract import FLAGS as FLAGS
from common.contract import REASONS as REASONS
from common.units import UNITS
from ingestion.schema import VALUE_COLUMNS, landing_schema

if TYPE_CHECKING:
    from common.catalogue import Catalogue
    from common.settings import Settings

EXCERPT = 200
TOO_LARGE_KEEP = 4096  # bytes of an oversized payload kept in quarantine (the rest is counted)

_REQUIRED = ("schema", "site_id", "device_id", "seq", "observed_at", "period_s", "values")
_OPTIONAL = ("units", "flags", "lane", "direction")
_TOP_LEVEL = frozenset(_REQUIRED + _OPTIONAL)
_STRING_RE = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET_STEP = [0] * 256
_BRACKET_STEP[ord("[")] = _BRACKET_STEP[ord("{")] = 1
_BRACKET_STEP[ord("]")] = _BRACKET_STEP[ord("}")] = -1
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


@dataclass(slots=True)
class Reading:
    feed: str
    key: tuple[str, str, str, int | None, str]  # (feed, site, device, lane, observed_at UTC ISO)
    content_hash: str
    local_date: date
    row: dict[str, object]


@dataclass(slots=True)
class Rejection:
    reason: str
    row: dict[str, object]


@dataclass(slots=True)
class ParsedMessage:
    readings: list[Reading]
    rejections: list[Rejection]

    @property
    def records(self) -> int:
        return len(self.readings) + len(self.rejections)


class _Reject(Exception):
    """Internal: one reading (or message) breaks the contract."""

    __slots__ = ("detail", "reason")

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail


def _excerpt(value: object) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False)
        if not (text.isascii() and text.isprintable()):
            # A reason must show what was wrong: invisible characters (U+200B, U+FEFF, bidi
            # overrides, lone surrogates) as escapes, and look-alikes (Cyrillic "А" in
            # "WS-AIR-01") next to their escapes, or "WS-AIR-01" differs from "WS-AIR-01".
            escaped = json.dumps(value).replace("\x7f", "\\u007f")  # DEL: ASCII, not escaped
            text = f"{text} ({escaped})" if text.isprintable() else escaped
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= EXCERPT else text[: EXCERPT - 1] + "…"


def _printable(text: str) -> str:
    # JSON may smuggle lone surrogates ("\\ud800") that no UTF-8 writer (Arrow) accepts.
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float | _BigInt):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def max_depth(payload: bytes) -> int:
    """Nesting depth of a JSON text's arrays/objects, ignoring brackets inside strings."""
    stripped = _STRING_RE.sub(b'""', payload).translate(None, _NOT_BRACKETS)
    return max(accumulate(map(_BRACKET_STEP.__getitem__, stripped)), default=0)


# RFC 3339 date-time (section 5.6) with a numeric or Z offset, as the JSON Schemas' pattern
# spells it. Digits past microseconds are allowed only as trailing zeros: storage keeps
# microseconds, and silently truncating would merge two distinct readings into one key.
_TIMESTAMP_RE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}"
    r"(?:\.([0-9]{1,6})0*)?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)
# The UTC offsets in use anywhere (Baker Island -12:00, Line Islands +14:00).
MIN_UTC_OFFSET = timedelta(hours=-12)
MAX_UTC_OFFSET = timedelta(hours=14)
_NAIVE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?")
# What fromisoformat reads unchanged: the common spelling, checked by one regex match.
_PLAIN_TIMESTAMP_RE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?(?:Z|[+-][0-9]{2}:[0-9]{2})"
)


def parse_timestamp(text: str) -> datetime | None:
    """An RFC 3339 date-time with an offset, or None. Naive or other ISO 8601 forms are None."""
    if _PLAIN_TIMESTAMP_RE.fullmatch(text) is None:
        m = _TIMESTAMP_RE.fullmatch(text)
        if m is None:
            return None
        frac = f".{m.group(1)}" if m.group(1) else ""
        offset = "+00:00" if m.group(2) in "Zz" else m.group(2)
        text = f"{text[:10]}T{text[11:19]}{frac}{offset}"
    try:
        return datetime.fromisoformat(text)
    except ValueError:  # 2026-02-30, 25:00, offset +24:00 and the like
        return None


class _DuplicateKeys(dict[str, object]):
    """A JSON object that named a key twice; ``name`` is the first repeated key."""

    __slots__ = ("name",)
    name: str


def _object_pairs(pairs: list[tuple[str, object]]) -> dict[str, object]:
    d = dict(pairs)
    if len(d) == len(pairs):
        return d
    seen: set[str] = set()
    dup = _DuplicateKeys(d)
    dup.name = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
    return dup


class _BigInt:
    """An integer literal longer than Python converts (4300 digits): a number out of range."""

    __slots__ = ("digits",)

    def __init__(self, digits: int) -> None:
        self.digits = digits

    def __repr__(self) -> str:
        return f"<integer of {self.digits} digits>"


def _parse_int(text: str) -> int | _BigInt:
    try:
        return int(text)
    except ValueError:
        return _BigInt(len(text))


def _loads(text: str) -> object:
    try:
        return json.loads(text, object_pairs_hook=_object_pairs)
    except ValueError as exc:
        # Python refuses int("1" * 4301) (CVE-2020-10735); it is still JSON, so parse it again
        # with integers read one by one and let the field's own check reject it.
        if "integer string conversion" not in str(exc):
            raise
        return json.loads(text, object_pairs_hook=_object_pairs, parse_int=_parse_int)


def _check_object(value: object, where: str) -> None:
    if type(value) is _DuplicateKeys:
        raise _Reject("duplicate_key", f"{where}: key {_excerpt(value.name)} appears twice")


class _FeedTable:
    """Everything the parser needs per feed, computed once."""

    __slots__ = ("columns", "feed", "fields", "schema", "units")

    def __init__(self, feed: str) -> None:
        self.feed = feed
        self.schema = f"{feed}/{CONTRACT_VERSION}"
        self.fields: dict[str, str] = VALUE_COLUMNS[feed]  # contract field -> landing column
        self.units: dict[str, dict[str, float]] = UNITS[feed]
        self.columns: tuple[str, ...] = tuple(landing_schema(feed).names)


# (lane count (0 for non-traffic sites), catalogue period_s, oldest accepted observed_at in UTC)
_SiteInfo = tuple[int, int, datetime]
# A decoded JSON object (json.loads gives values of any JSON type).
Doc = dict[str, Any]


class ContractParser:
    """Parse MQTT messages of contract v1 for one city against its site catalogue."""

    def __init__(
        self,
        catalogue: Catalogue,
        *,
        city: str,
        max_payload_bytes: int = 262144,
        future_tolerance_s: int = 300,
        timezone: str = "Asia/Shanghai",
        max_batch: int = MAX_BATCH,
        max_dates: int = MAX_DATES,
        oldest_observed_at: date | None = None,
    ) -> None:
        self.city = city
        self.max_payload_bytes = max_payload_bytes
        self.future_tolerance = timedelta(seconds=future_tolerance_s)
        self.max_batch = max_batch
        self.max_dates = max_dates
        self.tz = ZoneInfo(timezone)
        self._feeds = {f: _FeedTable(f) for f in VALUE_COLUMNS}
        self._schemas = {t.schema: f for f, t in self._feeds.items()}
        # (feed, site_id) -> (lane count (0 for non-traffic sites), catalogue period_s, oldest
        # accepted observed_at in UTC); membership = site known for feed.
        self._sites: dict[tuple[str, str], _SiteInfo] = {}
        for site in catalogue.sites.values():
            lanes = site.get("lanes") if site.feed == "traffic" else 0
            # The oldest accepted reading: local midnight of the site's valid_from, unless the
            # deployment names another day (an archive import from before the catalogue row).
            first_day = oldest_observed_at or site.valid_from
            oldest = datetime.combine(first_day, datetime.min.time(), self.tz).astimezone(UTC)
            self._sites[(site.feed, site.site_id)] = (
                int(lanes) if isinstance(lanes, int) else 0,
                site.period_s,
                oldest,
            )

    @classmethod
    def from_settings(cls, settings: Settings) -> ContractParser:
        from common.catalogue import load_catalogue

        return cls(
            load_catalogue(settings.reference_dir, settings.city),
            city=settings.city,
            max_payload_bytes=settings.max_payload_bytes,
            future_tolerance_s=settings.future_tolerance_s,
            timezone=settings.timezone,
            max_dates=settings.max_dates_per_message,
            oldest_observed_at=settings.oldest_observed_at,
        )

    # ------------------------------------------------------------------ public

    def parse(self, topic: str, payload: bytes | bytearray, received_at: datetime) -> ParsedMessage:
        """Parse one message. Never raises; every record ends as a Reading or a Rejection."""
        try:
            return self._parse(topic, payload, received_at)
        except Exception as exc:  # a bug, but ingest must go on: quarantine with the exception
            try:
                received = _as_utc(received_at)
            except Exception:
                received = datetime.now(UTC)
            try:
                raw = bytes(payload)
            except Exception:
                raw = b""
            row = self._reject_row(
                str(topic),
                None,
                None,
                received,
                "internal_error",
                f"{type(exc).__name__}: {exc}"[:EXCERPT],
                None,
                raw,
            )
            return ParsedMessage([], [Rejection("internal_error", row)])

    def local_date(self, observed_at_utc: datetime) -> date:
        """The city's natural day of a UTC instant."""
        return observed_at_utc.astimezone(self.tz).date()

    # ------------------------------------------------------------------ internals

    def _parse(
        self, topic: str, payload: bytes | bytearray, received_at: datetime
    ) -> ParsedMessage:
        received = _as_utc(received_at)

        # Topic first: it names feed and site for every quarantine row below.
        feed: str | None = None
        site: str | None = None
        reason: str | None = None
        detail = ""
        parts = topic.split("/") if isinstance(topic, str) else []
        if len(parts) != 4 or parts[0] != "city" or not parts[1] or not parts[3]:
            reason, detail = (
                "bad_topic",
                f"topic {_excerpt(topic)} is not city/{{city_id}}/{{feed}}/{{site_id}}",
            )
        elif parts[1] != self.city:
            reason, detail = "wrong_city", f"topic city {parts[1]!r} is not {self.city!r}"
        elif parts[2] not in self._feeds:
            reason, detail = (
                "unknown_feed",
                f"topic feed {_excerpt(parts[2])} is not one of {sorted(self._feeds)}",
            )
        else:
            feed, site = parts[2], parts[3]

        if not isinstance(payload, bytes | bytearray | memoryview):
            payload = str(payload).encode("utf-8", "surrogatepass")
        payload = bytes(payload)
        size = len(payload)

        if reason is None and size > self.max_payload_bytes:
            reason = "too_large"
            detail = (
                f"payload {size} bytes > limit {self.max_payload_bytes}; "
                f"first {TOO_LARGE_KEEP} bytes kept"
            )
            return self._whole(
                topic, feed, site, received, reason, detail, payload[:TOO_LARGE_KEEP], size
            )
        if reason is not None:
            return self._whole(topic, feed, site, received, reason, detail, payload, size)

        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError as exc:
            return self._whole(
                topic, feed, site, received, "not_utf8",
                f"invalid UTF-8 at byte {exc.start}: {payload[exc.start:exc.start + 8]!r}", payload, size,
            )  # fmt: skip
        # Cheap guard: fewer brackets than the limit cannot nest deeper than it.
        if payload.count(b"[") + payload.count(b"{") > MAX_DEPTH:
            depth = max_depth(payload)
            if depth > MAX_DEPTH:
                return self._whole(
                    topic, feed, site, received, "too_deep",
                    f"JSON nesting depth {depth} > {MAX_DEPTH}", payload, size,
                )  # fmt: skip
        try:
            doc = _loads(text)
        except RecursionError:
            return self._whole(
                topic, feed, site, received, "too_deep", "JSON nesting too deep for the parser",
                payload, size,
            )  # fmt: skip
        except ValueError as exc:
            return self._whole(
                topic, feed, site, received, "not_json", str(exc)[:EXCERPT], payload, size
            )

        assert feed is not None and site is not None  # no topic reason: the topic named both
        table = self._feeds[feed]
        if isinstance(doc, dict):
            try:
                return ParsedMessage([self._reading(table, site, topic, doc, received)], [])
            except _Reject as rej:
                return self._whole(
                    topic, feed, site, received, rej.reason, rej.detail, payload, size
                )
        if isinstance(doc, list):
            n = len(doc)
            if n == 0:
                return self._whole(
                    topic, feed, site, received, "empty_batch", "empty JSON array", payload, size
                )
            if n > self.max_batch:
                return self._whole(
                    topic, feed, site, received, "batch_too_large",
                    f"batch of {n} readings > limit {self.max_batch}", payload, size,
                )  # fmt: skip
            readings: list[Reading] = []
            rejections: list[Rejection] = []
            for i, item in enumerate(doc):
                try:
                    if not isinstance(item, dict):
                        raise _Reject(
                            "not_object", f"batch element {i} is {_type_name(item)}, not an object"
                        )
                    readings.append(self._reading(table, site, topic, item, received))
                except _Reject as rej:
                    raw = json.dumps(item, ensure_ascii=False, separators=(",", ":")).encode(
                        "utf-8",
                        "backslashreplace",  # a lone surrogate goes back to its \\u escape
                    )
                    row = self._reject_row(
                        topic, feed, site, received, rej.reason, rej.detail, i, raw, len(raw)
                    )
                    rejections.append(Rejection(rej.reason, row))
            if len(readings) > self.max_dates:
                dates = {r.local_date for r in readings}
                if len(dates) > self.max_dates:
                    # One landing file per date: such a message would cost one flush thousands
                    # of files and hold every ack past its bound.
                    return self._whole(
                        topic, feed, site, received, "too_many_dates",
                        f"batch spans {len(dates)} local dates ({min(dates)} .. {max(dates)}) "
                        f"> limit {self.max_dates}", payload, size,
                    )  # fmt: skip
            return ParsedMessage(readings, rejections)
        return self._whole(
            topic, feed, site, received, "not_object",
            f"payload is a JSON {_type_name(doc)}, not an object or array", payload, size,
        )  # fmt: skip

    # ------------------------------------------------------------------ one reading, in stages
    #
    # The stages run in this order, and the first broken rule names the quarantine reason:
    # fields, site (schema and site_id), identity (device_id, seq, period_s), observed_at,
    # values (units first), flags, lane and direction; then the content hash.

    def _reading(
        self, t: _FeedTable, topic_site: str, topic: str, doc: Doc, received: datetime
    ) -> Reading:
        _check_fields(doc)
        site_id, (lanes, site_period_s, oldest) = self._site(t, topic_site, doc)
        device_id, seq, period_s = _identity(doc, site_id, site_period_s)
        observed = self._observed_at(doc, site_id, oldest, received)
        values, row = _values(t, doc)
        flags = doc.get("flags")
        # Most readings carry no flags: skip the stage's call on the hot path.
        flags_s = "" if flags is None or flags == [] else _flags(flags)
        if t.feed != "traffic" and "lane" not in doc and "direction" not in doc:
            lane = direction = None  # the common case, without the stage's call
        else:
            lane, direction = _lane_direction(t, doc, lanes)

        feed = t.feed
        observed_iso = observed.isoformat()
        local_date = self._local_date(observed)
        # Canonical text of the reading: equal for an exact re-delivery, whatever the JSON spelling.
        canon = (
            f"{feed}\x1f{site_id}\x1f{device_id}\x1f{lane}\x1f{observed_iso}\x1f{period_s}"
            f"\x1f{flags_s}\x1f{seq}\x1f{direction}"
        )
        for fname, col in t.fields.items():
            canon += f"\x1f{row[col]!r}" if fname in values else "\x1f-"
        content_hash = blake2b(canon.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()

        row["site_id"] = site_id
        row["device_id"] = device_id
        row["lane"] = lane
        row["direction"] = direction
        row["seq"] = seq
        row["observed_at"] = observed
        row["period_s"] = period_s
        row["flags"] = flags_s
        row["received_at"] = received
        row["topic"] = topic
        row["content_hash"] = content_hash
        row["local_date"] = local_date
        return Reading(
            feed, (feed, site_id, device_id, lane, observed_iso), content_hash, local_date, row
        )

    def _site(self, t: _FeedTable, topic_site: str, doc: Doc) -> tuple[str, _SiteInfo]:
        """Schema and site_id agree with the topic, and the site is in the catalogue."""
        schema = doc["schema"]
        if schema != t.schema:
            if not isinstance(schema, str):
                raise _Reject("wrong_type", f"schema: expected string, got {_excerpt(schema)}")
            if schema in self._schemas:
                raise _Reject(
                    "schema_mismatch",
                    f"schema {schema!r} on a {t.feed} topic (expected {t.schema!r})",
                )
            raise _Reject("unknown_schema", f"schema {_excerpt(schema)} is not a known contract")

        site_id = doc["site_id"]
        if site_id != topic_site:
            if not isinstance(site_id, str):
                raise _Reject("wrong_type", f"site_id: expected string, got {_excerpt(site_id)}")
            raise _Reject(
                "site_mismatch",
                f"site_id {_excerpt(site_id)} differs from topic site {_excerpt(topic_site)}",
            )
        site_info = self._sites.get((t.feed, site_id))
        if site_info is None:
            raise _Reject(
                "unknown_site", f"site_id {_excerpt(site_id)} is not a known {t.feed} site"
            )
        return site_id, site_info

    def _observed_at(
        self, doc: Doc, site_id: str, oldest: datetime, received: datetime
    ) -> datetime:
        """observed_at in UTC: RFC 3339 with an offset, not before the site's oldest, not future."""
        observed_raw = doc["observed_at"]
        if type(observed_raw) is not str:
            raise _Reject(
                "wrong_type", f"observed_at: expected string, got {_excerpt(observed_raw)}"
            )
        observed = parse_timestamp(observed_raw)
        if observed is None:
            if _NAIVE_RE.fullmatch(observed_raw):
                raise _Reject(
                    "naive_timestamp", f"observed_at {_excerpt(observed_raw)} has no UTC offset"
                )
            raise _Reject(
                "bad_timestamp",
                f"observed_at {_excerpt(observed_raw)} is not an RFC 3339 date-time",
            )
        offset = observed.utcoffset()
        if offset is not None and not MIN_UTC_OFFSET <= offset <= MAX_UTC_OFFSET:
            # RFC 3339's grammar allows +23:59, but no clock on Earth is set beyond -12:00 and
            # +14:00: such an offset is a corrupted field, and the instant it names is a guess.
            raise _Reject(
                "bad_timestamp",
                f"observed_at {_excerpt(observed_raw)} has a UTC offset outside -12:00..+14:00",
            )
        try:
            observed = observed.astimezone(UTC)
        except OverflowError:
            raise _Reject(
                "bad_timestamp", f"observed_at {_excerpt(observed_raw)} is out of range"
            ) from None
        if observed < oldest:
            raise _Reject(
                "too_old",
                f"observed_at {_excerpt(observed_raw)} is before {oldest.isoformat()}, "
                f"the oldest accepted for {site_id}",
            )
        if observed - received > self.future_tolerance:
            raise _Reject(
                "future_timestamp",
                f"observed_at {_excerpt(observed_raw)} is {(observed - received).total_seconds():.0f} s "
                f"after received_at {received.isoformat()}",
            )
        return observed

    def _local_date(self, observed_utc: datetime) -> date:
        return observed_utc.astimezone(self.tz).date()

    def _whole(
        self,
        topic: str,
        feed: str | None,
        site: str | None,
        received: datetime,
        reason: str,
        detail: str,
        payload: bytes,
        size: int,
    ) -> ParsedMessage:
        row = self._reject_row(topic, feed, site, received, reason, detail, None, payload, size)
        return ParsedMessage([], [Rejection(reason, row)])

    def _reject_row(
        self,
        topic: str,
        feed: str | None,
        site: str | None,
        received: datetime,
        reason: str,
        detail: str,
        index: int | None,
        payload: bytes,
        size: int | None = None,
    ) -> dict[str, object]:
        return {
            "received_at": received,
            "topic": _printable(topic) if isinstance(topic, str) else repr(topic),
            "feed": feed,
            "site_id": site,
            "reason": reason,
            "detail": _printable(detail),
            "reading_index": index,
            "payload": payload,
            "payload_bytes": len(payload) if size is None else size,
            "received_date": received.astimezone(self.tz).date(),
        }


def _as_utc(ts: datetime) -> datetime:
    # A naive received_at is taken as UTC (the service passes aware times; tests may not).
    if ts.tzinfo is None:
        return ts.replace(tzinfo=UTC)
    if ts.utcoffset() == timedelta(0):
        return ts
    return ts.astimezone(UTC)


# ---------------------------------------------------------------------- stages of one reading
# Module functions (no parser state): each checks one part of a reading and raises _Reject.


def _check_fields(doc: Doc) -> None:
    """The reading is an object with unique keys, every required field and no unknown one."""
    _check_object(doc, "reading")
    for name in _REQUIRED:
        if name not in doc:
            raise _Reject("missing_field", f"{name}: required field missing")
    if len(doc) > 7:
        for name in doc:
            if name not in _TOP_LEVEL:
                raise _Reject("unknown_field", f"unknown top-level field {_excerpt(name)}")


def _identity(doc: Doc, site_id: str, site_period_s: int) -> tuple[str, int, int]:
    """device_id, seq and period_s (which must be the catalogue's period of the site)."""
    device_id = doc["device_id"]
    if type(device_id) is not str:
        raise _Reject("wrong_type", f"device_id: expected string, got {_excerpt(device_id)}")
    if not device_id or len(device_id) > MAX_DEVICE_ID or not device_id.isprintable():
        raise _Reject(
            "bad_device",
            f"device_id {_excerpt(device_id)} is empty, too long or not printable text",
        )
    if device_id.isspace():
        raise _Reject("bad_device", f"device_id {_excerpt(device_id)} is blank")

    seq = doc["seq"]
    if type(seq) is not int:
        raise _Reject("wrong_type", f"seq: expected integer, got {_excerpt(seq)}")
    if seq < 0:
        raise _Reject("negative_seq", f"seq {seq} < 0")
    if seq > 9223372036854775807:
        raise _Reject("wrong_type", f"seq {_excerpt(seq)} exceeds 64-bit integer range")

    period_s = doc["period_s"]
    if type(period_s) is not int:
        raise _Reject("wrong_type", f"period_s: expected integer, got {_excerpt(period_s)}")
    if not 0 < period_s <= MAX_PERIOD_S:
        raise _Reject("bad_period", f"period_s {_excerpt(period_s)} not in 1..{MAX_PERIOD_S}")
    if period_s != site_period_s:
        # Coverage and validity count readings as periods of the catalogue's length.
        raise _Reject(
            "period_mismatch",
            f"period_s {period_s} differs from {site_id}'s catalogue period {site_period_s}",
        )
    return device_id, seq, period_s


def _unit_factors(t: _FeedTable, units: object) -> dict[str, float] | None:
    """Conversion factor to the canonical unit per field whose unit is not canonical."""
    if units is None:
        return None
    if type(units) is not dict:
        _check_object(units, "units")
        raise _Reject("wrong_type", f"units: expected object, got {_excerpt(units)}")
    if not units:
        return None
    factors: dict[str, float] = {}
    for fname, uname in units.items():
        allowed = t.units.get(fname)
        if allowed is None:
            raise _Reject("unknown_field", f"units: unknown {t.feed} field {_excerpt(fname)}")
        factor = allowed.get(uname) if type(uname) is str else None
        if factor is None:
            raise _Reject(
                "unknown_unit",
                f"units.{fname}: {_excerpt(uname)} is not one of {sorted(allowed)}",
            )
        if factor != 1.0:
            factors[fname] = factor
    return factors


def _values(t: _FeedTable, doc: Doc) -> tuple[Doc, dict[str, object]]:
    """The reading's values, and a landing row holding them in canonical units (other columns None)."""
    # Units before values: the conversion factors apply to the values.
    # Most readings carry no units: skip the stage's call on the hot path.
    factors = _unit_factors(t, doc["units"]) if "units" in doc else None
    values = doc["values"]
    if type(values) is not dict:
        _check_object(values, "values")
        raise _Reject("wrong_type", f"values: expected object, got {_excerpt(values)}")
    if not values:
        raise _Reject("no_values", "values: empty object, no field measured")
    row: dict[str, object] = dict.fromkeys(t.columns)
    fields = t.fields
    for fname, v in values.items():
        col = fields.get(fname)
        if col is None:
            raise _Reject("unknown_field", f"values: unknown {t.feed} field {_excerpt(fname)}")
        if v is None:
            continue
        tv = type(v)
        if tv is float:
            if not math.isfinite(v):
                raise _Reject("bad_number", f"values.{fname}: {v!r} is not finite")
            v += 0.0  # -0.0 becomes 0.0: the same measurement, the same content hash
        elif tv is int:
            try:
                v = float(v)
            except OverflowError:
                raise _Reject("bad_number", f"values.{fname}: {_excerpt(v)} out of range") from None
        elif tv is _BigInt:
            raise _Reject("bad_number", f"values.{fname}: {v!r} out of range")
        else:
            raise _Reject(
                "bad_number",
                f"values.{fname}: {_excerpt(v)} is a {_type_name(v)}, not a number",
            )
        if factors and fname in factors:
            v = float(f"{v * factors[fname]:.12g}")  # see units._tidy
            if not math.isfinite(v):
                raise _Reject("bad_number", f"values.{fname}: out of range after unit conversion")
        row[col] = v
    return values, row


def _flags(flags: object) -> str:
    """A reading's (non-empty) flags as stored: the distinct flags, sorted, joined by "|"."""
    if type(flags) is not list:
        raise _Reject("wrong_type", f"flags: expected array, got {_excerpt(flags)}")
    for f in flags:
        if type(f) is not str or f not in FLAGS:
            raise _Reject("bad_flag", f"flags: {_excerpt(f)} is not one of {sorted(FLAGS)}")
    return "|".join(sorted(set(flags)))


def _lane_direction(t: _FeedTable, doc: Doc, lanes: int) -> tuple[int | None, str | None]:
    """Traffic readings name a lane of the detector and a direction; other feeds name neither."""
    lane = doc.get("lane")
    direction = doc.get("direction")
    if t.feed == "traffic":
        if lane is None:
            raise _Reject("missing_field", "lane: required on traffic readings")
        if type(lane) is not int:
            raise _Reject("wrong_type", f"lane: expected integer, got {_excerpt(lane)}")
        if lane < 1 or (lanes and lane > lanes):
            raise _Reject("bad_lane", f"lane {_excerpt(lane)} not in 1..{lanes or 'n'}")
        if direction is None:
            raise _Reject("missing_field", "direction: required on traffic readings")
        if type(direction) is not str or direction not in DIRECTIONS:
            raise _Reject(
                "bad_direction", f"direction {_excerpt(direction)} is not inbound or outbound"
            )
    elif lane is not None or direction is not None:
        raise _Reject("lane_not_allowed", f"lane/direction given on a {t.feed} reading")
    return lane, direction
