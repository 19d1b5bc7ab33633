-- Urban waterlogging (GB 51222-2017 + adopted alert levels): events per point and daily rollups.

create table if not exists kpi.kpi_event_waterlogging (
    site_id varchar not null,
    local_date date not null,
    event_start timestamptz not null,
    event_end timestamptz,
    status varchar not null,
    duration_min double,
    peak_depth_cm double not null,
    peak_at timestamptz not null,
    recession_min double,
    max_level varchar not null,
    max_level_no smallint not null,
    waterlogging_cm double not null,
    closure_cm double not null,
    danger_cm double not null,
    n_wet_readings integer not null,
    last_wet_at timestamptz not null,
    computed_at timestamptz not null
);
comment on table kpi.kpi_event_waterlogging is 'one row per (site_id, event_start) waterlogging event, attributed to the local day it starts: start = first reading above the point''s threshold, end = first reading of the dry spell (at or below the threshold) that lasted the end rule (10 min); ongoing when not yet closed (end null, duration up to the last wet reading)';

create table if not exists kpi.kpi_daily_waterlogging (
    local_date date not null,
    scope varchar not null,
    n_points integer not null,
    n_points_reporting integer not null,
    n_points_with_events integer not null,
    n_events integer not null,
    n_ongoing integer not null,
    n_closure_events integer not null,
    n_danger_events integer not null,
    waterlogged_hours double not null,
    max_depth_cm double,
    max_level varchar,
    coverage_pct double,
    computed_at timestamptz not null
);
comment on table kpi.kpi_daily_waterlogging is 'one row per (local_date, scope) where scope = county or a district: events starting that day, their total duration in hours, the day''s maximum valid depth and the highest alert level reached';
