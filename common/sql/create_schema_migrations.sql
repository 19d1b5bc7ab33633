-- The migration runner's own bookkeeping; created before any migration runs.
create schema if not exists meta;

create table if not exists meta.schema_migrations (
    version integer primary key,
    name varchar not null,
    checksum varchar not null,
    applied_at timestamptz not null
);

comment on table meta.schema_migrations is 'one row per applied migration file of any stage (version = NNNN prefix, unique across stages)';
