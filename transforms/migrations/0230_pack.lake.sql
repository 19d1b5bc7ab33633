-- DuckLake variant of 0230_pack.sql, run instead of it on a lake (common/migrate.py):
-- the same tables without primary keys (DuckLake has
-- none): key columns stay not null, and each model deletes its day range before inserting it.
-- The KPI pack (what is published and printed by `citypipe kpis`), its restatements and runs.

create table if not exists kpi.kpi_values (
    kpi_id varchar not null,
    local_date date not null,
    dimension varchar not null,
    value double,
    value_text varchar,
    unit varchar,
    target double,
    status varchar not null,
    coverage_pct double,
    details json,
    computed_at timestamptz not null
);
comment on table kpi.kpi_values is 'one row per (kpi_id, local_date, dimension): the published value (rounded to its published precision), text, unit, target, status provisional|final, coverage and details JSON';

create table if not exists kpi.kpi_restatements (
    kpi_id varchar not null,
    local_date date not null,
    dimension varchar not null,
    old_value double,
    new_value double,
    old_value_text varchar,
    new_value_text varchar,
    old_status varchar,
    restated_at timestamptz not null,
    reason varchar not null
);
comment on table kpi.kpi_restatements is 'one row per change of a previously published KPI value (value or value_text) found when a day is recomputed, with the reason of the run';

create table if not exists kpi.kpi_runs (
    run_id varchar not null,
    reason varchar not null,
    start_date date not null,
    end_date date not null,
    as_of_date date not null,
    n_values integer,
    n_restatements integer,
    started_at timestamptz not null,
    finished_at timestamptz
);
comment on table kpi.kpi_runs is 'one row per KPI computation run (a day or a range): why it ran, the days it covered and how many values and restatements it produced';
