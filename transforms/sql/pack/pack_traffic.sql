-- Pack rows of the traffic marts per scope (county, old_town, other_districts, districts):
-- peak-hour TPI and the hours at moderate or heavy congestion.
insert into kpi.pack_values
with
daily as (
    select *
    from kpi.traffic_daily
    where local_date between $start_date and $end_date
)

select
    'traffic.tpi' as kpi_id,
    local_date,
    scope as dimension,
    peak_tpi as value,
    peak_level as value_text,
    'TPI' as unit,
    null::double as target,
    kpi_status('traffic', local_date, $as_of_date::date, coverage_pct) as status,
    coverage_pct,
    json_object(
        'level_zh', peak_level_zh,
        'am_peak_tpi', am_peak_tpi,
        'pm_peak_tpi', pm_peak_tpi,
        'day_mean_tpi', day_mean_tpi,
        'max_hour_tpi', max_hour_tpi,
        'hours_moderate_or_heavy', hours_moderate_or_heavy,
        'detector_hours_moderate_or_heavy', detector_hours_moderate_or_heavy,
        'volume_veh', volume_veh,
        'vkt', round(vkt, 2)
    ) as details,
    now() as computed_at
from daily

union all

select
    'traffic.congested_hours',
    local_date,
    scope,
    hours_moderate_or_heavy::double,
    null,
    'h',
    null,
    kpi_status('traffic', local_date, $as_of_date::date, coverage_pct),
    coverage_pct,
    json_object('detector_hours_moderate_or_heavy', detector_hours_moderate_or_heavy),
    now()
from daily;
