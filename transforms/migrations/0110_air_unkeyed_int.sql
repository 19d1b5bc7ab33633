-- Brings a warehouse created by an earlier 0100_air.sql to today's shape (0100 only uses
-- "create table if not exists", so its later edits never reached existing tables).
-- 1. kpi.kpi_good_days_air: target columns nullable (days before any target keep a row).
-- 2. The large hourly int tables lose their primary keys: DuckDB keeps an ART index per key and
--    a range recompute deletes and re-inserts every row of the range: with the keys, recomputing
--    an already computed year took 36 s instead of 23 s (bench_kpi, 2 cores; int_air_iaqi alone
--    6.9 s instead of 1.9 s, the commit 7.8 s instead of 2.3 s). DuckDB cannot drop a primary
--    key (no ALTER support): each table is rebuilt (same columns, no key) and its rows copied.
--    On a new warehouse the tables are empty and the rebuild costs nothing. Each model deletes
--    its whole day range before inserting it and is the table's only writer, so no key is
--    needed for uniqueness.

alter table kpi.kpi_good_days_air alter column target_pct drop not null;
alter table kpi.kpi_good_days_air alter column remaining_nongood_budget_days drop not null;
alter table kpi.kpi_good_days_air alter column target_reachable drop not null;

alter table int.air_hourly_station rename to air_hourly_station_keyed;
create table int.air_hourly_station (
    site_id varchar not null,
    local_date date not null,
    hour_end timestamptz not null,
    hour_end_local timestamp not null,
    rule_set varchar not null,
    is_assessment boolean not null,
    pm25_ugm3 decimal(18, 6),
    pm10_ugm3 decimal(18, 6),
    so2_ugm3 decimal(18, 6),
    no2_ugm3 decimal(18, 6),
    co_mgm3 decimal(18, 6),
    o3_ugm3 decimal(18, 6),
    minutes_pm25 smallint not null,
    minutes_pm10 smallint not null,
    minutes_so2 smallint not null,
    minutes_no2 smallint not null,
    minutes_co smallint not null,
    minutes_o3 smallint not null,
    count_readings integer not null
);
insert into int.air_hourly_station by name select * from int.air_hourly_station_keyed;
drop table int.air_hourly_station_keyed;
comment on table int.air_hourly_station is 'one row per (air site, hour_end) for every hour of the computed days (complete grid, nulls where no valid value): hourly mean per pollutant of the valid readings, null unless >= min_minutes_per_hour minutes were sampled (GB 3095 Table 4)';

alter table int.air_moving_station rename to air_moving_station_keyed;
create table int.air_moving_station (
    site_id varchar not null,
    local_date date not null,
    hour_end timestamptz not null,
    hour_end_local timestamp not null,
    rule_set varchar not null,
    is_assessment boolean not null,
    o3_8h_ugm3 decimal(18, 6),
    count_hours_o3_8h smallint not null,
    pm25_24h_ugm3 decimal(18, 6),
    count_hours_pm25_24h smallint not null,
    pm10_24h_ugm3 decimal(18, 6),
    count_hours_pm10_24h smallint not null,
    so2_24h_ugm3 decimal(18, 6),
    count_hours_so2_24h smallint not null
);
insert into int.air_moving_station by name select * from int.air_moving_station_keyed;
drop table int.air_moving_station_keyed;
comment on table int.air_moving_station is 'one row per (air site, hour_end): O3 8-hour moving mean of the 8 hourly values ending at hour_end (>= 6 valid) and 24-hour moving means of PM2.5, PM10, SO2 (>= 20 valid, for the 2012 real-time AQI)';

alter table int.air_iaqi rename to air_iaqi_keyed;
create table int.air_iaqi (
    grain varchar not null,
    scope varchar not null,
    local_date date not null,
    period_end_local timestamp not null,
    rule_set varchar not null,
    input varchar not null,
    label varchar not null,
    ordinal integer not null,
    counts_in_aqi boolean not null,
    concentration decimal(18, 6),
    concentration_used decimal(18, 6),
    is_above_top boolean,
    iaqi integer
);
insert into int.air_iaqi by name select * from int.air_iaqi_keyed;
drop table int.air_iaqi_keyed;
comment on table int.air_iaqi is 'one row per (grain day|hour, scope county|site_id, period_end_local, AQI input of the rule set): the concentration, the value used (rounded per the rule set) and its IAQI (exact, rounded up)';

alter table int.air_aqi rename to air_aqi_keyed;
create table int.air_aqi (
    grain varchar not null,
    scope varchar not null,
    local_date date not null,
    period_end_local timestamp not null,
    rule_set varchar not null,
    count_required integer not null,
    count_available integer not null,
    aqi_available_max integer,
    aqi integer,
    excluded_missing_pollutant boolean not null,
    primary_pollutants varchar,
    aqi_level integer,
    level_zh varchar,
    category_zh varchar,
    category_en varchar,
    colour_rgb varchar,
    is_good boolean not null,
    iaqi_so2 integer,
    iaqi_no2 integer,
    iaqi_pm10 integer,
    iaqi_co integer,
    iaqi_o3_1h integer,
    iaqi_o3_8h integer,
    iaqi_pm25 integer
);
insert into int.air_aqi by name select * from int.air_aqi_keyed;
drop table int.air_aqi_keyed;
comment on table int.air_aqi is 'one row per (grain, scope, period_end_local): AQI = max IAQI of the counted indicators, null when not published (missing-pollutant rule), category, primary pollutant(s) (ties all, none when AQI <= 50)';
