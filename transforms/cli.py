"""``citypipe kpis`` (print a day's KPI pack from ``kpi.pack_values``) and ``citypipe backfill``
(compute a date range with ``transforms.daily.backfill``).

Only light imports at module level: citypipe/cli.py imports this module for every ``citypipe``
command; the warehouse and the KPI run are imported inside the commands.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date, datetime
from typing import Any

from common.settings import Settings
from transforms import published

# The stable keys of every KPI in ``citypipe kpis --format json`` (docs/kpis.md).
KPI_KEYS = published.KPI_KEYS


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("kpis", help="print the KPI pack of a natural day")
    p.add_argument("--date", required=True, type=date.fromisoformat, help="local day YYYY-MM-DD")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--kpi", default=None, help="only KPI ids starting with this, e.g. water.")
    p.add_argument(
        "--as-published",
        default=None,
        metavar="WHEN",
        help=(
            "the pack as it stood then, with the restatements since (time travel; DuckLake"
            " backends only): a date YYYY-MM-DD (its end, local time) or an instant"
            " YYYY-MM-DDTHH:MM[:SS][+HH:MM] (local time without an offset); reaches back"
            " CITYPIPE_SNAPSHOT_RETENTION_DAYS"
        ),
    )
    p.set_defaults(func=kpis_command)

    b = sub.add_parser("backfill", help="compute the KPIs of a date range, in order")
    b.add_argument("--start", required=True, type=date.fromisoformat, help="first day")
    b.add_argument("--end", required=True, type=date.fromisoformat, help="last day (included)")
    b.add_argument(
        "--chunk-days", type=int, default=31, help="days per range pass (1 = one day at a time)"
    )
    b.add_argument("--reason", default="backfill", help="recorded with any restatement")
    b.set_defaults(func=backfill_command)


def read_pack(settings: Settings, day: date, prefix: str | None = None) -> list[dict[str, Any]]:
    """The pack rows of ``day`` from the warehouse (read-only), in a stable order."""
    from transforms import SQL, scalar
    from warehouse.db import reader

    with reader(settings) as con:
        if not scalar(con, "queries/count_tables.sql", {"schema": "kpi", "table": "pack_values"}):
            return []
        params = {"day": day, "prefix": prefix}
        rows = SQL.run(con, "queries/select_pack.sql", params).fetchall()
    return published.pack_items(rows)


def format_table(day: date, pack: list[dict[str, Any]]) -> str:
    header = ("kpi_id", "dimension", "value", "text", "unit", "target", "status", "coverage")
    rows = [header]
    for k in pack:
        value = k["value"]
        rows.append(
            (
                k["kpi_id"],
                k["dimension"],
                "NA" if value is None else f"{value:g}",
                k["value_text"] or "",
                k["unit"] or "",
                "" if k["target"] is None else f"{k['target']:g}",
                k["status"],
                "" if k["coverage_pct"] is None else f"{k['coverage_pct']:.1f}%",
            )
        )
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(header))]
    lines = [f"KPI pack for {day} (local natural day)"]
    for i, r in enumerate(rows):
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


# Exit status when the warehouse stayed locked by a writer past CITYPIPE_LOCK_TIMEOUT_S.
EXIT_LOCK_TIMEOUT = 3


# Exit status of --as-published on a backend without history (the single DuckDB file).
EXIT_NO_TIME_TRAVEL = 2


def parse_when(text: str, tz: str) -> datetime:
    """``--as-published``: a date means the end of that local day; an ISO instant without an
    offset is local time."""
    from zoneinfo import ZoneInfo

    try:
        if len(text) == 10:
            return published.end_of_day(date.fromisoformat(text), tz)
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(
            f"--as-published {text!r}: expected YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS][+HH:MM]"
        ) from exc
    return when if when.tzinfo else when.replace(tzinfo=ZoneInfo(tz))


def kpis_command(args: argparse.Namespace, settings: Settings) -> int:
    from warehouse.db import LockTimeout

    if args.as_published is not None:
        return as_published_command(args, settings)
    try:
        pack = read_pack(settings, args.date, args.kpi)
    except FileNotFoundError as exc:
        print(f"citypipe kpis: {exc}", file=sys.stderr)
        return 1
    except LockTimeout as exc:
        print(f"citypipe kpis: {exc}", file=sys.stderr)
        return EXIT_LOCK_TIMEOUT
    if args.format == "json":
        doc = {"date": args.date.isoformat(), "count": len(pack), "kpis": pack}
        print(json.dumps(doc, ensure_ascii=False, indent=2))
    else:
        print(format_table(args.date, pack))
    if not pack:
        print(
            f"citypipe kpis: no KPIs computed for {args.date}; run "
            f"`citypipe run citypipe_daily_kpis --date {args.date}` or `citypipe backfill`",
            file=sys.stderr,
        )
        return 1
    return 0


def as_published_command(args: argparse.Namespace, settings: Settings) -> int:
    """``citypipe kpis --date D --as-published WHEN``: the pack of D as it stood at WHEN."""
    try:
        when = parse_when(args.as_published, settings.timezone)
    except ValueError as exc:
        print(f"citypipe kpis: {exc}", file=sys.stderr)
        return 2
    try:
        found = published.pack_as_published(settings, args.date, when, args.kpi)
    except published.TimeTravelUnavailable as exc:
        print(f"citypipe kpis: {exc}", file=sys.stderr)
        return EXIT_NO_TIME_TRAVEL
    except (published.NoSnapshotAt, FileNotFoundError) as exc:
        print(f"citypipe kpis: {exc}", file=sys.stderr)
        return 1
    if args.format == "json":
        doc = {
            "date": args.date.isoformat(),
            "as_published": {
                "at": when.isoformat(),
                "snapshot_id": found.snapshot_id,
                "snapshot_time": found.snapshot_time.isoformat(),
            },
            "count": len(found.kpis),
            "kpis": found.kpis,
            "restated_since": found.restated_since,
        }
        print(json.dumps(doc, ensure_ascii=False, indent=2))
    else:
        print(format_published(found))
    if not found.kpis:
        print(f"citypipe kpis: no KPIs for {args.date} were published by {when}", file=sys.stderr)
        return 1
    return 0


def format_published(found: published.PublishedPack) -> str:
    lines = format_table(found.day, found.kpis).splitlines()
    lines[0] = (
        f"KPI pack for {found.day} (local natural day) as published at"
        f" {found.as_of.isoformat(timespec='seconds')}: snapshot {found.snapshot_id} of"
        f" {found.snapshot_time.astimezone(found.as_of.tzinfo).isoformat(timespec='seconds')}"
    )
    if not found.restated_since:
        lines.append("restated since: nothing")
        return "\n".join(lines)
    lines.append(f"restated since ({len(found.restated_since)}):")
    for r in found.restated_since:
        old = r["old_value_text"] or ("NA" if r["old_value"] is None else f"{r['old_value']:g}")
        new = r["new_value_text"] or ("NA" if r["new_value"] is None else f"{r['new_value']:g}")
        lines.append(
            f"  {r['restated_at']}  {r['kpi_id']} {r['dimension']}: {old} -> {new} ({r['reason']})"
        )
    return "\n".join(lines)


def backfill_command(args: argparse.Namespace, settings: Settings) -> int:
    from transforms.daily import RunSummary, backfill

    if args.end < args.start:
        print("citypipe backfill: --end is before --start", file=sys.stderr)
        return 2
    total = (args.end - args.start).days + 1
    bar = None
    if sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=total, unit="day", desc="backfill", file=sys.stderr)
    t0 = time.monotonic()

    def progress(first: date, last: date, s: RunSummary) -> None:
        n = (last - first).days + 1
        if bar is not None:
            bar.update(n)
            bar.set_postfix_str(str(last))
        else:
            print(
                f"computed {first}..{last} ({n} day{'s' if n > 1 else ''}):"
                f" {s.n_values} values, {s.n_restatements} restatements,"
                f" {time.monotonic() - t0:.1f} s",
                flush=True,
            )

    runs = backfill(
        settings, args.start, args.end, args.reason, chunk_days=args.chunk_days, progress=progress
    )
    if bar is not None:
        bar.close()
    restated = sum(r.n_restatements for r in runs)
    print(
        f"citypipe backfill {args.start}..{args.end}: {total} days in"
        f" {time.monotonic() - t0:.1f} s, {restated} restatements"
    )
    return 0
