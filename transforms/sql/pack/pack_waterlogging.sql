-- Pack rows of the waterlogging marts, county and per district: events (starting that day),
-- waterlogged hours and the day's maximum depth.
insert into kpi.pack_values
with
daily as (
    select *
    from kpi.waterlogging_daily
    where local_date between $start_date and $end_date
)

select
    'waterlogging.events' as kpi_id,
    local_date,
    scope as dimension,
    n_events::double as value,
    max_level as value_text,
    'events' as unit,
    null::double as target,
    kpi_status('waterlogging', local_date, $as_of_date::date, coverage_pct) as status,
    coverage_pct,
    json_object(
        'n_points', n_points,
        'n_points_reporting', n_points_reporting,
        'n_points_with_events', n_points_with_events,
        'n_ongoing', n_ongoing,
        'n_closure_events', n_closure_events,
        'n_danger_events', n_danger_events,
        'waterlogged_hours', waterlogged_hours,
        'max_depth_cm', max_depth_cm,
        'max_level', max_level
    ) as details,
    now() as computed_at
from daily

union all

select
    'waterlogging.hours',
    local_date,
    scope,
    waterlogged_hours,
    null,
    'h',
    null,
    kpi_status('waterlogging', local_date, $as_of_date::date, coverage_pct),
    coverage_pct,
    json_object('n_events', n_events, 'n_ongoing', n_ongoing),
    now()
from daily

union all

select
    'waterlogging.max_depth',
    local_date,
    scope,
    max_depth_cm,
    max_level,
    'cm',
    null,
    kpi_status('waterlogging', local_date, $as_of_date::date, coverage_pct),
    coverage_pct,
    json_object('n_points_reporting', n_points_reporting),
    now()
from daily;
