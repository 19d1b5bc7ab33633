-- Stations' own daily values: concentrations, AQI, category, primary pollutants, validity.
with station_days as (
    select * from kpi.air_daily_station
)

select
    site_id, local_date, rule_set, is_assessment, pm25_ugm3, pm10_ugm3, so2_ugm3, no2_ugm3,
    co_mgm3, o3_8h_max_ugm3, o3_1h_max_ugm3, aqi, aqi_level, category_zh, category_en,
    primary_pollutants, is_valid_day, is_good_day, excluded_missing_pollutant, coverage_pct,
    status, computed_at
from station_days
where
    local_date between $start_date and $end_date
    and ($site_id is null or site_id = $site_id)
order by local_date desc, site_id asc
limit $limit offset $offset;
