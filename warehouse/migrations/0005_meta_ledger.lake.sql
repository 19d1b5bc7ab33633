-- DuckLake variant of 0005_meta_ledger.sql, run instead of it on a lake (common/migrate.py):
-- the same tables without primary keys (DuckLake
-- has none): key columns stay not null, and the load keeps one row per key.
-- The load ledger (a file is loaded at most once) and the load batches whose follow-up
-- steps (dq recording, dirty-day marking) are tracked so a failed step is redone next run.

create table meta.load_ledger (
    sha256 varchar not null,
    path varchar not null,
    kind varchar not null,
    feed varchar,
    size_bytes bigint not null,
    mtime_ns bigint not null,
    rows bigint not null,
    load_run_id varchar not null,
    loaded_at timestamptz not null
);
comment on table meta.load_ledger is 'one row per landing or quarantine file loaded (kind landing|quarantine); same sha256 = same file, never loaded twice';

create table meta.load_batches (
    validation_run_id varchar not null,
    load_run_id varchar not null,
    feed varchar not null,
    changed_dates date[] not null,
    loaded_at timestamptz not null,
    dq_recorded_at timestamptz,
    dirty_marked_at timestamptz
);
comment on table meta.load_batches is 'one row per feed batch loaded into core: the local dates it changed, and when completeness was recomputed and the dates were marked dirty (null = still to do)';
