"""Human-readable summary of the latest ingest load run (for the CLI and the demo)."""

from __future__ import annotations

from collections import defaultdict
from datetime import date

from common.settings import Settings
from warehouse import SQL, db


def ingest_summary(settings: Settings) -> str:
    """Per feed: accepted / flagged (by expectation) / invalid values per column (and why) /
    quarantined (by reason); Data Docs path."""
    if not db.exists(settings):
        return "warehouse: nothing loaded yet"
    with db.reader(settings) as con:
        last = SQL.run(con, "report/select_last_run.sql").fetchone()
        if last is None:
            return "warehouse: nothing loaded yet"
        params = {"load_run_id": last[0]}
        counts = SQL.run(con, "report/select_batch_counts.sql", params).fetchall()
        flagged = SQL.run(con, "report/select_flagged_by_expectation.sql", params).fetchall()
        by_value = SQL.run(con, "report/select_invalid_by_value.sql", params).fetchall()
        quarantined = SQL.run(con, "report/select_quarantine_by_reason.sql", params).fetchall()
        docs = [r[0] for r in SQL.run(con, "report/select_data_docs.sql", params).fetchall()]
    by_exp: dict[str, list[str]] = defaultdict(list)
    for feed, exp, n in flagged:
        by_exp[feed].append(f"{exp}={n}")
    invalid = _invalid_by_value(by_value)
    by_reason: dict[str, list[str]] = defaultdict(list)
    for feed, reason, n in quarantined:
        by_reason[feed].append(f"{reason}={n}")
    lines = [f"load run {last[0]}"]
    for feed, files, read, valid, nflag, partly, dups, revs, nq in counts:
        lines.append(
            f"  {feed:<12} files={files} read={read} accepted_valid={valid} flagged={nflag} "
            f"(partly_valid={partly}) duplicates={dups} revisions={revs} quarantined={nq}"
        )
        if by_exp.get(feed):
            lines.append(f"  {'':<12} flagged by expectation: {', '.join(by_exp[feed])}")
        if invalid.get(feed):
            lines.append(f"  {'':<12} invalid per value: {', '.join(invalid[feed])}")
        if by_reason.get(feed):
            lines.append(f"  {'':<12} quarantined by reason: {', '.join(by_reason[feed])}")
    index = settings.gx_dir / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"
    lines.append(f"  Data Docs: {index if index.exists() else '(not built yet)'}")
    lines.extend(f"    {d}" for d in docs)
    return "\n".join(lines)


def _invalid_by_value(rows: list[tuple[str, str, str | None, int]]) -> dict[str, list[str]]:
    """``pm25_ugm3=3 (pm25_ugm3_in_range 2, spike_pm25_ugm3 1)`` per value column of a feed;
    readings invalid as a whole last, as ``whole reading=N (...)``."""
    totals: dict[tuple[str, str], int] = {}
    why: dict[tuple[str, str], list[str]] = defaultdict(list)
    for feed, column, expectation, n in rows:
        if expectation is None:
            totals[(feed, column)] = n
        else:
            why[(feed, column)].append(f"{expectation} {n}")
    out: dict[str, list[str]] = defaultdict(list)
    for (feed, column), n in totals.items():  # already ordered by the query
        label = "whole reading" if column == "*" else column
        out[feed].append(f"{label}={n} ({', '.join(why[(feed, column)])})")
    return out


def value_validity(settings: Settings, start: date, end: date) -> str:
    """Per feed and value column over local days start..end (dq.site_day_values): values
    received, valid, invalidated by a value-level check, in readings invalid as a whole."""
    if not db.exists(settings):
        return "warehouse: nothing loaded yet"
    with db.reader(settings) as con:
        rows = SQL.run(
            con, "report/select_value_validity.sql", {"start_date": start, "end_date": end}
        ).fetchall()
    head = (
        f"  {'feed':<13}{'value':<19}{'received':>10}{'valid':>10}"
        f"{'invalid: value check':>22}{'whole reading':>15}"
    )
    lines = [head]
    for feed, column, received, valid, by_check, by_reading in rows:
        lines.append(
            f"  {feed:<13}{column:<19}{received:>10}{valid:>10}{by_check:>22}{by_reading:>15}"
        )
    return "\n".join(lines)
