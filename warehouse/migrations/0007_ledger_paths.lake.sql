-- DuckLake variant of 0007_ledger_paths.sql, run instead of it on a lake (common/migrate.py):
-- the same table without a primary key (DuckLake
-- has none): path stays not null, and the load keeps one row per path.
-- Every path a load has seen, with the size and mtime it had: a copied, moved or touched file
-- whose checksum is already in meta.load_ledger is skipped at load time, and without this row
-- discovery would pick it up (re-read, re-hash, re-validate) on every run forever.

create table meta.ledger_paths (
    path varchar not null,
    size_bytes bigint not null,
    mtime_ns bigint not null,
    sha256 varchar not null,
    kind varchar not null,
    load_run_id varchar not null,
    seen_at timestamptz not null
);
comment on table meta.ledger_paths is 'one row per landing or quarantine file path seen by a load (loaded or skipped for a known sha256): its size and mtime when last seen; discovery skips a path whose size and mtime still match';
