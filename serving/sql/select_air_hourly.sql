-- Hourly air values of the stations and the county (scope = site id or 'county').
with hours as (
    select * from kpi.air_hourly
)

select
    scope, hour_end, hour_end_local, local_date, rule_set, is_assessment, pm25_ugm3, pm10_ugm3,
    so2_ugm3, no2_ugm3, co_mgm3, o3_ugm3, o3_8h_ugm3, pm25_24h_ugm3, pm10_24h_ugm3, aqi,
    aqi_level, category_zh, category_en, colour_rgb, primary_pollutants,
    excluded_missing_pollutant, status, computed_at
from hours
where
    local_date between $start_date and $end_date
    and ($scope is null or scope = $scope)
order by hour_end desc, scope != 'county', scope asc
limit $limit offset $offset;
