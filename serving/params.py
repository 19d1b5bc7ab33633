"""Validation of request parameters, before anything reaches SQL.

Every value is also bound as a parameter (never formatted into SQL); these checks exist so a
bad request gets a clear 4xx that says what is wrong instead of an empty page or a 500.
"""

from __future__ import annotations

import re
from datetime import date, timedelta

# The widest date range one request may ask for: a year of daily rows is enough for any chart,
# and bounds the work a single request can cause.
MAX_RANGE_DAYS = 366
# Hourly values (24 a day per scope) are served for shorter ranges.
MAX_HOURLY_RANGE_DAYS = 31
MIN_DATE = date(2000, 1, 1)
MAX_DATE = date(2100, 12, 31)
MAX_PAGE_ROWS = 10_000
MAX_OFFSET = 10_000_000

# Ids of KPIs, sites, districts, feeds, expectations and reasons: letters, digits and . _ -
# (the catalogue's and the KPI pack's alphabet); anything else cannot name a row.
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,79}")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


class BadParameter(ValueError):
    """A request parameter that cannot be served; ``status`` is the HTTP status (4xx)."""

    def __init__(self, name: str, message: str, status: int = 400) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name
        self.message = message
        self.status = status

    def __str__(self) -> str:
        return f"{self.name}: {self.message}"


def parse_date(value: str, name: str) -> date:
    """An ISO date YYYY-MM-DD between 2000 and 2100."""
    text = value.strip()
    if not _ISO_DATE.fullmatch(text):
        raise BadParameter(name, f"expected a date YYYY-MM-DD, got {_show(value)}")
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise BadParameter(name, f"not a calendar date: {_show(value)}") from None
    if not MIN_DATE <= day <= MAX_DATE:
        raise BadParameter(name, f"must be between {MIN_DATE} and {MAX_DATE}, got {day}")
    return day


def date_range(
    start: str | None,
    end: str | None,
    *,
    today: date,
    default_days: int = 1,
    max_days: int = MAX_RANGE_DAYS,
) -> tuple[date, date]:
    """``start``..``end`` inclusive. Missing end: ``today``; missing start: ``default_days``
    days ending at end. Refused: end before start, or more than ``max_days`` days."""
    last = parse_date(end, "end") if end is not None else today
    first = (
        parse_date(start, "start")
        if start is not None
        else max(MIN_DATE, last - timedelta(days=default_days - 1))
    )
    if last < first:
        raise BadParameter("end", f"end {last} is before start {first}")
    days = (last - first).days + 1
    if days > max_days:
        raise BadParameter("end", f"range of {days} days; at most {max_days} per request")
    return first, last


def identifier(value: str | None, name: str) -> str | None:
    """An id (KPI, site, district, feed, expectation, reason) or None when not given."""
    if value is None:
        return None
    if not _ID.fullmatch(value):
        raise BadParameter(
            name, f"not a valid id (letters, digits, . _ - ; at most 80): {_show(value)}"
        )
    return value


def choice(value: str | None, allowed: tuple[str, ...], name: str) -> str | None:
    if value is None:
        return None
    if value not in allowed:
        raise BadParameter(name, f"must be one of {', '.join(allowed)}; got {_show(value)}")
    return value


def known(value: str | None, allowed: frozenset[str], name: str, what: str) -> str | None:
    """An id that must exist (404 otherwise: the parameter is well formed, the thing is not)."""
    value = identifier(value, name)
    if value is not None and value not in allowed:
        raise BadParameter(name, f"unknown {what} {_show(value)}", status=404)
    return value


def _show(value: str) -> str:
    """The offending value, shortened and printable (never echoes kilobytes back)."""
    text = value if len(value) <= 40 else value[:40] + "…"
    return repr(text)
