"""After a run's loads: site-day completeness, the staging views, the dirty days the KPI DAG
recomputes, and the Data Docs links. Each works off ``meta.load_batches`` rows still marked as
pending, so a follow-up that failed is redone by the next run."""

from __future__ import annotations

import duckdb

from common.settings import Settings
from warehouse import SQL, db, staging
from warehouse.dims import load_dim_site


def record_dq(settings: Settings) -> int:
    """Recompute dq.site_day_completeness for the days of load batches not yet recorded, and
    refresh the staging views (``warehouse.staging``). Returns the (feed, day) pairs done.

    Two overlapping runs both mark the same ``meta.load_batches`` rows recorded, so on a lake
    the later one conflicts and is redone (``db.write``), finding nothing left to do."""

    def work(con: duckdb.DuckDBPyConnection) -> int:
        load_dim_site(con, settings)
        SQL.run(con, "dq/recompute_site_day_completeness.sql")
        return int(SQL.run(con, "dq/count_days_recomputed.sql").fetchall()[0][0])

    n = db.write(settings, work, what="record dq")

    def refresh() -> None:
        # Every run passes here after its loads: the views follow the configured home.
        # Apart from the dq rows: a view that cannot be bound must not undo them.
        with db.writer(settings) as con:
            staging.refresh_views(con, settings)

    db.retrying(settings, refresh, what="staging views")
    return n


def mark_dirty_days(settings: Settings) -> list[tuple[str, str]]:
    """Upsert core.dirty_days for load batches not yet marked; return the pending dirty days
    as (feed, ISO date)."""

    def work(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
        SQL.run(con, "core/mark_dirty_days.sql")
        rows = SQL.run(con, "core/select_pending_dirty_days.sql").fetchall()
        return [(f, d.isoformat()) for f, d in rows]

    return db.write(settings, work, what="mark dirty days")


def set_data_docs_urls(settings: Settings, pages: dict[str, str]) -> None:
    """Store each validation run's Data Docs page in dq.validation_runs."""

    def work(con: duckdb.DuckDBPyConnection) -> None:
        for vrid, url in pages.items():
            SQL.run(con, "dq/set_data_docs_url.sql", {"validation_run_id": vrid, "url": url})

    if pages and db.exists(settings):
        db.write(settings, work, what="data docs links")
