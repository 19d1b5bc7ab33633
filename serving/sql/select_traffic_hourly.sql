-- Hourly TPI per scope (county, old_town, other_districts, a district).
with hours as (
    select * from kpi.traffic_hourly
)

select
    scope, local_date, hour_start, hour_end, peak_period, n_detectors, volume_veh, vkt, tti,
    tpi, tpi_level_no, tpi_level, tpi_level_zh, computed_at
from hours
where
    local_date between $start_date and $end_date
    and ($scope is null or scope = $scope)
    and ($hour is null or hour(hour_start) = $hour)
order by hour_start desc, scope != 'county', scope asc
limit $limit offset $offset;
