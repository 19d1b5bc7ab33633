-- Road traffic (adopted convention, standards.md §6): detector hours, TTI/TPI by scope.

create table if not exists int.int_traffic_detector_hourly (
    site_id varchar not null,
    local_date date not null,
    hour_start timestamp not null,
    hour_end timestamp not null,
    district varchar,
    is_old_town boolean,
    road_class varchar,
    n_rows integer not null,
    expected_rows integer not null,
    volume_veh double not null,
    speed_kmh double,
    occupancy_pct double,
    congestion_level_no smallint,
    congestion_level varchar,
    congestion_level_zh varchar,
    tti double,
    vkt double not null,
    computed_at timestamptz not null
);
comment on table int.int_traffic_detector_hourly is 'one row per (site_id, hour_start) with valid readings; hour_start/hour_end are local (Asia/Shanghai) wall-clock times; volume summed over lanes, speed = volume-weighted harmonic mean (space-mean speed) rounded to 0.01 km/h, TTI = free-flow / speed floored at 1, vkt = volume x segment length';

create table if not exists kpi.kpi_hourly_traffic (
    scope varchar not null,
    local_date date not null,
    hour_start timestamp not null,
    hour_end timestamp not null,
    peak_period varchar,
    n_detectors integer not null,
    volume_veh double not null,
    vkt double not null,
    tti double,
    tpi double,
    tpi_level_no smallint,
    tpi_level varchar,
    tpi_level_zh varchar,
    computed_at timestamptz not null
);
comment on table kpi.kpi_hourly_traffic is 'one row per (scope, hour_start) where scope = county, old_town, other_districts or a district: VKT-weighted TTI of the detectors, TPI (piecewise-linear in TTI - 1, capped at 10) and its level; peak_period am|pm|null';

create table if not exists kpi.kpi_daily_traffic (
    local_date date not null,
    scope varchar not null,
    peak_tpi double,
    peak_level varchar,
    peak_level_zh varchar,
    am_peak_tpi double,
    pm_peak_tpi double,
    day_mean_tpi double,
    max_hour_tpi double,
    hours_moderate_or_heavy integer not null,
    detector_hours_moderate_or_heavy integer not null,
    volume_veh double not null,
    vkt double not null,
    coverage_pct double,
    computed_at timestamptz not null
);
comment on table kpi.kpi_daily_traffic is 'one row per (local_date, scope): peak-hour TPI (mean of the hourly TPIs of the peak hours), AM/PM peak TPIs, hours whose TPI is moderate or heavy, detector-hours at moderate or heavy congestion level';
