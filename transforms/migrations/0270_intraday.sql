-- Provisional intra-day values (issue 11 item 2): what the 10-minute ingest DAG computes for the
-- day still open (and for yesterday until the 01:00 KPI run has computed it). Each table holds only
-- days without a KPI pack: the intraday step deletes a day's rows once the daily run packed it.
-- No keys or checks, so a lake runs this file as it is.
create table if not exists kpi.intraday_air_hourly (
    scope varchar not null,
    hour_end timestamptz not null,
    hour_end_local timestamp not null,
    local_date date not null,
    rule_set varchar,
    is_assessment boolean,
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
    excluded_missing_pollutant boolean,
    is_provisional boolean not null,
    data_until timestamptz not null,
    computed_at timestamptz not null
);

comment on table kpi.intraday_air_hourly is 'one row per (scope, hour_end) of a complete hour of a day not yet packed by the daily KPI run, scope = county or an air site_id: the real-time AQI computed by the same models as kpi.air_hourly, provisional';

create table if not exists kpi.intraday_air_day (
    local_date date not null,
    year integer not null,
    counted_through date,
    ytd_good_days integer not null,
    ytd_valid_days integer not null,
    ytd_ratio_pct decimal(4, 1),
    ytd_excluded_days integer not null,
    target_pct decimal(5, 2),
    remaining_nongood_budget_days integer,
    days_not_counted integer not null,
    is_day_counted boolean not null,
    hours_so_far integer not null,
    county_hours_valid integer not null,
    aqi_so_far integer,
    aqi_level_so_far integer,
    category_zh_so_far varchar,
    category_en_so_far varchar,
    primary_pollutants_so_far varchar,
    is_good_so_far boolean,
    last_hour_end_local timestamp,
    last_hour_aqi integer,
    is_provisional boolean not null,
    data_until timestamptz not null,
    computed_at timestamptz not null
);

comment on table kpi.intraday_air_day is 'one row per local_date not yet packed by the daily KPI run: the good-days ratio year to date as counted by the daily run (through counted_through; this day never counted), and the county AQI of the day so far (daily models over the hours so far, the minimum-hours rules waived), provisional';

create table if not exists kpi.intraday_traffic_hourly (
    scope varchar not null,
    local_date date not null,
    hour_start timestamp not null,
    hour_end timestamp not null,
    peak_period varchar,
    n_detectors integer,
    volume_veh double,
    vkt double,
    tti double,
    tpi double,
    tpi_level_no smallint,
    tpi_level varchar,
    tpi_level_zh varchar,
    is_provisional boolean not null,
    data_until timestamptz not null,
    computed_at timestamptz not null
);

comment on table kpi.intraday_traffic_hourly is 'one row per (scope, local hour) of a complete hour of a day not yet packed by the daily KPI run: TPI and TTI by county, old town / other districts and district, as kpi.traffic_hourly, provisional';

create table if not exists kpi.intraday_waterlogging_events (
    site_id varchar not null,
    local_date date not null,
    event_start timestamptz not null,
    event_end timestamptz,
    status varchar not null,
    duration_min double,
    peak_depth_cm double,
    peak_at timestamptz,
    recession_min double,
    max_level varchar,
    max_level_no smallint,
    waterlogging_cm double,
    closure_cm double,
    danger_cm double,
    n_wet_readings integer,
    last_wet_at timestamptz,
    open_day date not null,
    is_provisional boolean not null,
    data_until timestamptz not null,
    computed_at timestamptz not null
);

comment on table kpi.intraday_waterlogging_events is 'one row per (open_day, site_id, event_start): a waterlogging event of the open day or still ongoing on it (status ongoing|closed), as kpi.waterlogging_events, provisional';

create table if not exists kpi.intraday_waterlogging_depths (
    open_day date not null,
    site_id varchar not null,
    district varchar,
    observed_at timestamptz,
    depth_cm double,
    level_no smallint,
    level_code varchar,
    waterlogging_cm double,
    closure_cm double,
    danger_cm double,
    is_provisional boolean not null,
    data_until timestamptz not null,
    computed_at timestamptz not null
);

comment on table kpi.intraday_waterlogging_depths is 'one row per (open_day, waterlogging point): the point''s newest valid depth reading up to data_until (null when none in the window) and the alert level it is above, provisional';
