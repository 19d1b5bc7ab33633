-- Claim rows: one one-row table per unit of loading that must never run twice at once (the
-- landing load of each feed, the quarantine load, the site dimension). Every write of that
-- unit updates its row in the same transaction. On a DuckLake two overlapping writes of one
-- unit then both rewrite the same data file, so the later commit fails with a conflict and is
-- redone from the start, re-reading the ledger: nothing is loaded twice even on a PostgreSQL
-- catalog, where two plain ledger inserts would both commit. A table per unit, not a row per
-- unit in one table: DuckLake detects conflicts per data file, and one file (or compaction
-- merging the rows into one) would make loads of different feeds conflict too
-- (docs/warehouse.md). On the single file the lock already serialises writers; the update is
-- harmless there. No key, check or index: it runs as is on a lake.

create table meta.claim_load_air (
    claims bigint not null,
    claimed_by varchar not null,
    claimed_at timestamptz not null
);
comment on table meta.claim_load_air is 'one row per warehouse: the claim every load transaction of feed air updates (claims = commits so far, claimed_by = the last load_run_id), so overlapping air loads conflict on a lake';
insert into meta.claim_load_air values (0, 'migration 0011', now());

create table meta.claim_load_water (
    claims bigint not null,
    claimed_by varchar not null,
    claimed_at timestamptz not null
);
comment on table meta.claim_load_water is 'one row per warehouse: the claim every load transaction of feed water updates (claims = commits so far, claimed_by = the last load_run_id), so overlapping water loads conflict on a lake';
insert into meta.claim_load_water values (0, 'migration 0011', now());

create table meta.claim_load_waterlogging (
    claims bigint not null,
    claimed_by varchar not null,
    claimed_at timestamptz not null
);
comment on table meta.claim_load_waterlogging is 'one row per warehouse: the claim every load transaction of feed waterlogging updates (claims = commits so far, claimed_by = the last load_run_id), so overlapping waterlogging loads conflict on a lake';
insert into meta.claim_load_waterlogging values (0, 'migration 0011', now());

create table meta.claim_load_traffic (
    claims bigint not null,
    claimed_by varchar not null,
    claimed_at timestamptz not null
);
comment on table meta.claim_load_traffic is 'one row per warehouse: the claim every load transaction of feed traffic updates (claims = commits so far, claimed_by = the last load_run_id), so overlapping traffic loads conflict on a lake';
insert into meta.claim_load_traffic values (0, 'migration 0011', now());

create table meta.claim_load_quarantine (
    claims bigint not null,
    claimed_by varchar not null,
    claimed_at timestamptz not null
);
comment on table meta.claim_load_quarantine is 'one row per warehouse: the claim every quarantine load transaction updates (claims = commits so far, claimed_by = the last load_run_id), so overlapping quarantine loads conflict on a lake';
insert into meta.claim_load_quarantine values (0, 'migration 0011', now());

create table meta.claim_dim_site (
    claims bigint not null,
    claimed_by varchar not null,
    claimed_at timestamptz not null
);
comment on table meta.claim_dim_site is 'one row per warehouse: the claim every replacement of core.dim_site updates (claims = replacements so far), so two writers that both find it out of date (or empty) conflict instead of both inserting the sites';
insert into meta.claim_dim_site values (0, 'migration 0011', now());
