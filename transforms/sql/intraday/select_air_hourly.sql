-- Scratch: the real-time AQI rows of the complete hours of $start_date .. $end_date, as the
-- production models computed them into kpi.air_hourly (the daily run's status column left out).
select
    scope,
    hour_end,
    hour_end_local,
    local_date,
    rule_set,
    is_assessment,
    pm25_ugm3,
    pm10_ugm3,
    so2_ugm3,
    no2_ugm3,
    co_mgm3,
    o3_ugm3,
    o3_8h_ugm3,
    pm25_24h_ugm3,
    pm10_24h_ugm3,
    aqi,
    aqi_available_max,
    aqi_level,
    category_zh,
    category_en,
    colour_rgb,
    primary_pollutants,
    excluded_missing_pollutant
from kpi.air_hourly
where local_date between $start_date and $end_date and hour_end <= $data_until
