-- Scratch: per day of $start_date .. $end_date, the county AQI of the day so far (kpi.air_daily
-- computed over the hours so far, day minimums waived), how many of its hours are complete and
-- how many have a county hourly AQI, and the last of those.
with days as (
    select unnest(generate_series($start_date::date, $end_date::date, interval 1 day))::date
        as local_date
),

county_hours as (
    select local_date, hour_end_local, aqi
    from kpi.air_hourly
    where
        scope = 'county' and local_date between $start_date and $end_date
        and hour_end <= $data_until
),

per_day as (
    select
        local_date,
        count(*)::integer as hours_so_far,
        count(aqi)::integer as county_hours_valid,
        max(hour_end_local) filter (where aqi is not null) as last_hour_end_local,
        arg_max(aqi, hour_end_local) filter (where aqi is not null) as last_hour_aqi
    from county_hours
    group by local_date
)

select
    d.local_date,
    coalesce(p.hours_so_far, 0) as hours_so_far,
    coalesce(p.county_hours_valid, 0) as county_hours_valid,
    a.aqi as aqi_so_far,
    a.aqi_level as aqi_level_so_far,
    a.category_zh as category_zh_so_far,
    a.category_en as category_en_so_far,
    a.primary_pollutants as primary_pollutants_so_far,
    case when a.aqi is not null then a.is_good_day end as is_good_so_far,
    p.last_hour_end_local,
    p.last_hour_aqi
from days as d
left join per_day as p on d.local_date = p.local_date
left join kpi.air_daily as a on d.local_date = a.local_date
