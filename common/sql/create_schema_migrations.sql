-- The migration runner's own bookkeeping; created before any migration runs.
-- No primary key: DuckLake has none, so the runner keeps versions unique (one row per version:
-- the claim row below makes overlapping migrators conflict). A warehouse file created before
-- this keeps its key ("if not exists"), which is harmless.
create schema if not exists meta;

create table if not exists meta.schema_migrations (
    version integer not null,
    name varchar not null,
    checksum varchar not null,
    applied_at timestamptz not null
);

comment on table meta.schema_migrations is 'one row per applied migration file of any stage (version = NNNN prefix, unique across stages)';

create table if not exists meta.schema_migration_claim (
    migrations_applied bigint not null
);

comment on table meta.schema_migration_claim is 'one row per warehouse (the claim row), rewritten by every migration transaction: on a lake two overlapping migrators then conflict at commit and the loser retries';

insert into meta.schema_migration_claim (migrations_applied)
select 0 as migrations_applied
where not exists (select 1 from meta.schema_migration_claim);
