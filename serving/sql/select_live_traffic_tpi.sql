-- Hourly TPI of day $day per scope (county, old_town, other_districts, a district): the daily
-- run's rows once it has packed the day (status 'final'), else the intraday run's
-- (status 'provisional').
with packed as (
    select count(*) > 0 as is_packed
    from kpi.pack_values
    where local_date = $day
),

final as (
    select
        scope, local_date, hour_start, hour_end, peak_period, n_detectors, volume_veh, vkt,
        tti, tpi, tpi_level_no, tpi_level, tpi_level_zh,
        'final' as status,
        computed_at
    from kpi.traffic_hourly
    where local_date = $day and (select packed.is_packed from packed)
),

provisional as (
    select
        scope, local_date, hour_start, hour_end, peak_period, n_detectors, volume_veh, vkt,
        tti, tpi, tpi_level_no, tpi_level, tpi_level_zh,
        'provisional' as status,
        computed_at
    from kpi.intraday_traffic_hourly
    where local_date = $day and not (select packed.is_packed from packed)
),

hours as (
    select * from final
    union all
    select * from provisional
)

select *
from hours
where $scope is null or scope = $scope
order by hour_start desc, scope != 'county', scope asc
limit $limit offset $offset;
