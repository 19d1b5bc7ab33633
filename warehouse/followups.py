"""After a run's loads: site-day completeness, the staging views, the dirty days the KPI DAG
recomputes, and the Data Docs links. Each works off ``meta.load_batches`` rows still marked as
pending, so a follow-up that failed is redone by the next run."""

from __future__ import annotations

from common.settings import Settings
from common.sql import transaction
from warehouse import SQL, db, staging
from warehouse.dims import load_dim_site


def record_dq(settings: Settings) -> int:
    """Recompute dq.site_day_completeness for the days of load batches not yet recorded, and
    refresh the staging views (``warehouse.staging``). Returns the (feed, day) pairs done."""
    with db.writer(settings) as con:
        with transaction(con):
            load_dim_site(con, settings)
            SQL.run(con, "dq/recompute_site_day_completeness.sql")
            n = SQL.run(con, "dq/count_days_recomputed.sql").fetchall()[0][0]
        # Every run passes here after its loads: the views follow the configured home.
        # Outside the transaction: a view that cannot be bound must not undo the dq rows.
        staging.refresh_views(con, settings)
    return int(n)


def mark_dirty_days(settings: Settings) -> list[tuple[str, str]]:
    """Upsert core.dirty_days for load batches not yet marked; return the pending dirty days
    as (feed, ISO date)."""
    with db.writer(settings) as con:
        with transaction(con):
            SQL.run(con, "core/mark_dirty_days.sql")
        rows = SQL.run(con, "core/select_pending_dirty_days.sql").fetchall()
    return [(f, d.isoformat()) for f, d in rows]


def set_data_docs_urls(settings: Settings, pages: dict[str, str]) -> None:
    """Store each validation run's Data Docs page in dq.validation_runs."""
    if pages and db.exists(settings):
        with db.writer(settings) as con:
            for vrid, url in pages.items():
                SQL.run(con, "dq/set_data_docs_url.sql", {"validation_run_id": vrid, "url": url})
