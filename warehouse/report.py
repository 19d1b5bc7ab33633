"""Human-readable summary of the latest ingest load run (for the CLI and the demo)."""

from __future__ import annotations

from collections import defaultdict

from citypipe.settings import Settings
from warehouse import db, sqlfiles


def ingest_summary(settings: Settings) -> str:
    """Per feed: accepted / flagged (by expectation) / quarantined (by reason); Data Docs path."""
    if not settings.warehouse_path.exists():
        return "warehouse: nothing loaded yet"
    with db.reader(settings) as con:
        last = sqlfiles.run(con, "report/last_run.sql").fetchone()
        if last is None:
            return "warehouse: nothing loaded yet"
        params = {"load_run_id": last[0]}
        counts = sqlfiles.run(con, "report/batch_counts.sql", params).fetchall()
        flagged = sqlfiles.run(con, "report/flagged_by_expectation.sql", params).fetchall()
        quarantined = sqlfiles.run(con, "report/quarantine_by_reason.sql", params).fetchall()
        docs = [r[0] for r in sqlfiles.run(con, "report/data_docs.sql", params).fetchall()]
    by_exp: dict[str, list[str]] = defaultdict(list)
    for feed, exp, n in flagged:
        by_exp[feed].append(f"{exp}={n}")
    by_reason: dict[str, list[str]] = defaultdict(list)
    for feed, reason, n in quarantined:
        by_reason[feed].append(f"{reason}={n}")
    lines = [f"load run {last[0]}"]
    for feed, files, read, valid, nflag, dups, revs, nq in counts:
        lines.append(
            f"  {feed:<12} files={files} read={read} accepted_valid={valid} flagged={nflag} "
            f"duplicates={dups} revisions={revs} quarantined={nq}"
        )
        if by_exp.get(feed):
            lines.append(f"  {'':<12} flagged by expectation: {', '.join(by_exp[feed])}")
        if by_reason.get(feed):
            lines.append(f"  {'':<12} quarantined by reason: {', '.join(by_reason[feed])}")
    index = settings.gx_dir / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"
    lines.append(f"  Data Docs: {index if index.exists() else '(not built yet)'}")
    lines.extend(f"    {d}" for d in docs)
    return "\n".join(lines)
