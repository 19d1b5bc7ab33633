-- Hourly AQI of day $day for the stations and the county (scope = site id or 'county'): the
-- daily run's rows once it has packed the day (status 'final', kpi_status its look-back
-- status), else the intraday run's (status 'provisional').
with packed as (
    select count(*) > 0 as is_packed
    from kpi.pack_values
    where local_date = $day
),

final as (
    select
        scope, hour_end, hour_end_local, local_date, rule_set, is_assessment, pm25_ugm3,
        pm10_ugm3, so2_ugm3, no2_ugm3, co_mgm3, o3_ugm3, o3_8h_ugm3, pm25_24h_ugm3,
        pm10_24h_ugm3, aqi, aqi_level, category_zh, category_en, colour_rgb,
        primary_pollutants, excluded_missing_pollutant,
        'final' as status,
        status as kpi_status,
        computed_at
    from kpi.air_hourly
    where local_date = $day and (select packed.is_packed from packed)
),

provisional as (
    select
        scope, hour_end, hour_end_local, local_date, rule_set, is_assessment, pm25_ugm3,
        pm10_ugm3, so2_ugm3, no2_ugm3, co_mgm3, o3_ugm3, o3_8h_ugm3, pm25_24h_ugm3,
        pm10_24h_ugm3, aqi, aqi_level, category_zh, category_en, colour_rgb,
        primary_pollutants, excluded_missing_pollutant,
        'provisional' as status,
        null::varchar as kpi_status,
        computed_at
    from kpi.intraday_air_hourly
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
order by hour_end desc, scope != 'county', scope asc
limit $limit offset $offset;
