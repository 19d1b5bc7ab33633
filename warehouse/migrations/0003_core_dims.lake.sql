-- DuckLake variant of 0003_core_dims.sql, run instead of it on a lake (common/migrate.py):
-- the same tables without primary keys (DuckLake
-- has none): key columns stay not null, and the writers keep one row per key.
-- The site dimension (from the version-controlled catalogue) and the dirty-day queue
-- that hands changed days to the KPI DAG.

create table core.dim_site (
    site_id varchar not null,
    feed varchar not null,
    kind varchar not null,
    name_en varchar not null,
    name_zh varchar not null,
    district varchar,
    lat double not null,
    lon double not null,
    period_s integer not null,
    device_ids varchar[] not null,
    valid_from date not null,
    station_type varchar,
    is_assessment boolean,
    river_en varchar,
    river_zh varchar,
    water_body_type varchar,
    is_mainstream boolean,
    target_class varchar,
    cluster varchar,
    waterlogging_cm integer,
    closure_cm integer,
    danger_cm integer,
    road_en varchar,
    road_zh varchar,
    road_class varchar,
    is_old_town boolean,
    segment_length_km double,
    free_flow_kmh double,
    lanes integer,
    loaded_at timestamptz not null
);
comment on table core.dim_site is 'one row per catalogue site (reference/sites/{city}); replaced from the catalogue on each load run';

create table core.dirty_days (
    feed varchar not null,
    local_date date not null,
    first_marked_at timestamptz not null,
    last_marked_at timestamptz not null,
    kpi_computed_at timestamptz
);
comment on table core.dirty_days is 'one row per (feed, local_date) that received new or changed data; kpi_computed_at is null until the KPI DAG recomputes the day (recompute when null or < last_marked_at)';
