-- DuckLake variant of 0100_air.sql, run instead of it on a lake (common/migrate.py):
-- the same tables without primary keys (DuckLake has
-- none): key columns stay not null, and each model deletes its day range before inserting it.
-- Air-quality KPI layer (H4a): intermediate tables (int.air_*) and marts (kpi.kpi_*_air).
-- Concentrations in int.* are decimal(18, 6): every mean is rounded half to even to 1e-6 of its
-- unit so that the later rounding and IAQI steps are exact (docs/kpis_air.md, "Exact arithmetic").
-- Hours are stamped with their END (GB 3095); local_date is the China-time natural day the hour
-- belongs to (the hour stamped D+1 00:00 belongs to day D).
-- The large hourly int tables carry no primary key (index upkeep doubled the load time); their
-- models are the only writers and delete the whole day range before inserting it.

create table if not exists int.air_rule_sets (
    rule_set varchar not null,
    valid_from date not null,
    applies_from date not null,
    round_before_iaqi boolean not null,
    missing_pollutant varchar not null,
    missing_publish_above_aqi integer not null,
    primary_above_aqi integer not null,
    good_max_aqi integer not null,
    min_minutes_per_hour integer not null,
    min_hours_per_day integer not null,
    min_hours_per_8h integer not null,
    min_hours_per_24h_moving integer not null,
    o3_8h_first_end_hour integer not null,
    min_o3_8h_per_day integer not null,
    min_hours_o3_1h_max integer not null,
    county_min_station_share decimal(5, 4) not null,
    min_daily_values_year integer not null,
    min_daily_values_month integer not null,
    min_daily_values_february integer not null,
    natural_day_timezone varchar not null
);
comment on table int.air_rule_sets is 'one row per AQI rule set (HJ633-2012, HJ633-2026): ref.aqi_rules pivoted to typed columns; applies_from = valid_from except the earliest set, which also covers every earlier day';

create table if not exists int.air_hourly_station (
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
comment on table int.air_hourly_station is 'one row per (air site, hour_end) for every hour of the computed days (complete grid, nulls where no valid value): hourly mean per pollutant of the valid readings, null unless >= min_minutes_per_hour minutes were sampled (GB 3095 Table 4)';

create table if not exists int.air_moving_station (
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
comment on table int.air_moving_station is 'one row per (air site, hour_end): O3 8-hour moving mean of the 8 hourly values ending at hour_end (>= 6 valid) and 24-hour moving means of PM2.5, PM10, SO2 (>= 20 valid, for the 2012 real-time AQI)';

create table if not exists int.air_daily_station (
    site_id varchar not null,
    local_date date not null,
    rule_set varchar not null,
    is_assessment boolean not null,
    pm25_ugm3 decimal(18, 6),
    pm10_ugm3 decimal(18, 6),
    so2_ugm3 decimal(18, 6),
    no2_ugm3 decimal(18, 6),
    co_mgm3 decimal(18, 6),
    o3_8h_max_ugm3 decimal(18, 6),
    o3_1h_max_ugm3 decimal(18, 6),
    count_hours_pm25 smallint not null,
    count_hours_pm10 smallint not null,
    count_hours_so2 smallint not null,
    count_hours_no2 smallint not null,
    count_hours_co smallint not null,
    count_hours_o3 smallint not null,
    count_o3_8h_windows smallint not null,
    count_hours_expected smallint not null,
    count_valid_hour_values integer not null,
    coverage_pct double not null
);
comment on table int.air_daily_station is 'one row per (air site, local_date): 24h means (>= 20 valid hours), daily max 8h O3 (over the day''s 8h windows, >= min_o3_8h_per_day valid) and daily max 1h O3; coverage_pct = valid hourly values / (6 pollutants x hours) x 100';

create table if not exists int.air_daily_county (
    local_date date not null,
    rule_set varchar not null,
    count_assessment_stations integer not null,
    count_stations_required integer not null,
    pm25_ugm3 decimal(18, 6),
    pm10_ugm3 decimal(18, 6),
    so2_ugm3 decimal(18, 6),
    no2_ugm3 decimal(18, 6),
    co_mgm3 decimal(18, 6),
    o3_8h_max_ugm3 decimal(18, 6),
    o3_1h_max_ugm3 decimal(18, 6),
    count_stations_pm25 integer not null,
    count_stations_pm10 integer not null,
    count_stations_so2 integer not null,
    count_stations_no2 integer not null,
    count_stations_co integer not null,
    count_stations_o3_8h integer not null,
    count_stations_o3_1h integer not null,
    coverage_pct double not null
);
comment on table int.air_daily_county is 'one row per local_date: county daily concentration per indicator = mean of the assessment stations'' valid daily values (micro-stations never), null unless >= count_stations_required stations are valid (HJ 663, standards.md 3)';

create table if not exists int.air_hourly_county (
    local_date date not null,
    hour_end timestamptz not null,
    hour_end_local timestamp not null,
    rule_set varchar not null,
    count_assessment_stations integer not null,
    count_stations_required integer not null,
    pm25_ugm3 decimal(18, 6),
    pm10_ugm3 decimal(18, 6),
    so2_ugm3 decimal(18, 6),
    no2_ugm3 decimal(18, 6),
    co_mgm3 decimal(18, 6),
    o3_ugm3 decimal(18, 6),
    o3_8h_ugm3 decimal(18, 6),
    pm25_24h_ugm3 decimal(18, 6),
    pm10_24h_ugm3 decimal(18, 6),
    so2_24h_ugm3 decimal(18, 6),
    coverage_pct double not null
);
comment on table int.air_hourly_county is 'one row per hour_end: county hourly (and moving) concentrations = mean of the assessment stations'' valid values, same station-share rule as the daily value';

create table if not exists int.air_iaqi (
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
comment on table int.air_iaqi is 'one row per (grain day|hour, scope county|site_id, period_end_local, AQI input of the rule set): the concentration, the value used (rounded per the rule set) and its IAQI (exact, rounded up)';

create table if not exists int.air_aqi (
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
comment on table int.air_aqi is 'one row per (grain, scope, period_end_local): AQI = max IAQI of the counted indicators, null when not published (missing-pollutant rule), category, primary pollutant(s) (ties all, none when AQI <= 50)';

create table if not exists kpi.kpi_daily_air (
    local_date date not null,
    rule_set varchar not null,
    pm25_ugm3 double,
    pm10_ugm3 double,
    so2_ugm3 double,
    no2_ugm3 double,
    co_mgm3 double,
    o3_8h_max_ugm3 double,
    o3_1h_max_ugm3 double,
    iaqi_so2 integer,
    iaqi_no2 integer,
    iaqi_pm10 integer,
    iaqi_co integer,
    iaqi_o3_1h integer,
    iaqi_o3_8h integer,
    iaqi_pm25 integer,
    aqi integer,
    aqi_available_max integer,
    aqi_level integer,
    level_zh varchar,
    category_zh varchar,
    category_en varchar,
    colour_rgb varchar,
    primary_pollutants varchar,
    is_valid_day boolean not null,
    is_good_day boolean not null,
    excluded_missing_pollutant boolean not null,
    count_indicators_required integer not null,
    count_indicators_available integer not null,
    count_assessment_stations integer not null,
    coverage_pct double not null,
    status varchar not null,
    computed_at timestamptz not null
);
comment on table kpi.kpi_daily_air is 'one row per local_date: county daily air quality (HJ 633 / HJ 663): concentrations (mean of assessment stations), IAQIs, AQI (null when not published), category, primary pollutants, valid/good day flags, coverage and status';

create table if not exists kpi.kpi_daily_station_air (
    site_id varchar not null,
    local_date date not null,
    rule_set varchar not null,
    is_assessment boolean not null,
    pm25_ugm3 double,
    pm10_ugm3 double,
    so2_ugm3 double,
    no2_ugm3 double,
    co_mgm3 double,
    o3_8h_max_ugm3 double,
    o3_1h_max_ugm3 double,
    aqi integer,
    aqi_level integer,
    category_zh varchar,
    category_en varchar,
    primary_pollutants varchar,
    is_valid_day boolean not null,
    is_good_day boolean not null,
    excluded_missing_pollutant boolean not null,
    coverage_pct double not null,
    status varchar not null,
    computed_at timestamptz not null
);
comment on table kpi.kpi_daily_station_air is 'one row per (air site, local_date): the station''s own daily AQI (assessment and micro-stations; micro-stations are for hot spots and never enter kpi_daily_air)';

create table if not exists kpi.kpi_hourly_air (
    scope varchar not null,
    hour_end timestamptz not null,
    hour_end_local timestamp not null,
    local_date date not null,
    rule_set varchar not null,
    is_assessment boolean not null,
    pm25_ugm3 double,
    pm10_ugm3 double,
    so2_ugm3 double,
    no2_ugm3 double,
    co_mgm3 double,
    o3_ugm3 double,
    o3_8h_ugm3 double,
    pm25_24h_ugm3 double,
    pm10_24h_ugm3 double,
    aqi integer,
    aqi_available_max integer,
    aqi_level integer,
    category_zh varchar,
    category_en varchar,
    colour_rgb varchar,
    primary_pollutants varchar,
    excluded_missing_pollutant boolean not null,
    status varchar not null,
    computed_at timestamptz not null
);
comment on table kpi.kpi_hourly_air is 'one row per (scope, hour_end), scope = county or an air site_id: real-time (hourly) AQI under the hour''s rule set (2012: 1h values, PM 24h moving means; 2026: six 1h values, PM on the daily breakpoints)';

create table if not exists kpi.kpi_good_days_air (
    local_date date not null,
    year integer not null,
    mtd_good_days integer not null,
    mtd_valid_days integer not null,
    mtd_ratio_pct decimal(4, 1),
    ytd_good_days integer not null,
    ytd_valid_days integer not null,
    ytd_ratio_pct decimal(4, 1),
    ytd_excluded_days integer not null,
    ytd_nongood_days integer not null,
    ytd_days_elapsed integer not null,
    remaining_days_in_year integer not null,
    target_pct decimal(5, 2),
    ytd_meets_target boolean,
    remaining_nongood_budget_days integer,
    target_reachable boolean,
    coverage_pct double not null,
    status varchar not null,
    computed_at timestamptz not null
);
comment on table kpi.kpi_good_days_air is 'one row per local_date: month- and year-to-date good-days ratio (good / valid x 100, each day under its own rule set), the target and how many more non-good days the year can afford';

create table if not exists kpi.kpi_annual_air (
    local_date date not null,
    year integer not null,
    pm25_ytd_mean_ugm3 double,
    pm10_ytd_mean_ugm3 double,
    so2_ytd_mean_ugm3 double,
    no2_ytd_mean_ugm3 double,
    pm25_p95_ugm3 double,
    pm10_p95_ugm3 double,
    so2_p98_ugm3 double,
    no2_p98_ugm3 double,
    co_p95_mgm3 double,
    o3_8h_p90_ugm3 double,
    count_valid_days_pm25 integer not null,
    count_valid_days_pm10 integer not null,
    count_valid_days_so2 integer not null,
    count_valid_days_no2 integer not null,
    count_valid_days_co integer not null,
    count_valid_days_o3_8h integer not null,
    pm25_year_valid boolean not null,
    pm10_year_valid boolean not null,
    so2_year_valid boolean not null,
    no2_year_valid boolean not null,
    status varchar not null,
    computed_at timestamptz not null
);
comment on table kpi.kpi_annual_air is 'one row per local_date: year-to-date annual statistics of the county daily values as of that day (means, 95th/98th/90th percentiles by the numpy linear method); *_year_valid applies GB 3095 Table 4 (>= 324 days, >= 27 per month, 25 in February)';
